#!/usr/bin/env bash
# The demo: smsflow with the example flows and plugins on the console provider, a fake order API
# and a webhook receiver, walked through step by step. `just demo` runs it.
#
#   scripts/demo.sh            fresh store; pauses before each step; leaves the server running
#                              at the end for the inbox and the simulator (Ctrl-C stops it all)
#   scripts/demo.sh --keep     keep the store of the last run (target/demo/store) instead
#   scripts/demo.sh --run      no pauses, and stop everything after the last step (what the
#                              test in tests/demo.rs runs, twice, to see the same texts twice)
#
# Environment: SMSFLOW (the binary; target/release/smsflow), DEMO_DIR (target/demo),
# DEMO_PORT (8080), DEMO_ORDER_PORT (8091), DEMO_HOOK_PORT (8092). Needs python3, curl and jq.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
keep=0 run=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    --run) run=1 ;;
    *) echo "usage: scripts/demo.sh [--keep] [--run]" >&2; exit 2 ;;
  esac
done
smsflow="${SMSFLOW:-$root/target/release/smsflow}"
dir="${DEMO_DIR:-$root/target/demo}"
port="${DEMO_PORT:-8080}"
order_port="${DEMO_ORDER_PORT:-8091}"
hook_port="${DEMO_HOOK_PORT:-8092}"
base="http://127.0.0.1:$port"
token="demo-token"
config="$dir/smsflow.toml"

for tool in python3 curl jq; do
  command -v "$tool" >/dev/null || { echo "the demo needs $tool: install it and run again" >&2; exit 1; }
done
[ -x "$smsflow" ] || { echo "no smsflow binary at $smsflow: run \`just build\` (or set SMSFLOW)" >&2; exit 1; }

# --- the demo's config: smsflow.toml with this run's store, ports and absolute folders --------
mkdir -p "$dir"
if [ "$keep" = 0 ]; then rm -rf "$dir/store"; fi
substitute() { # FILE FROM TO: replace one exact text, and fail loudly when it is not there
  grep -qF -- "$2" "$1" || { echo "smsflow.toml no longer has \`$2\`: update scripts/demo.sh" >&2; exit 1; }
  python3 -c 'import sys; p, a, b = sys.argv[1:]; s = open(p).read(); open(p, "w").write(s.replace(a, b))' "$1" "$2" "$3"
}
cp "$root/smsflow.toml" "$config"
substitute "$config" '127.0.0.1:8080' "127.0.0.1:$port"
substitute "$config" '127.0.0.1:8091' "127.0.0.1:$order_port"
substitute "$config" '127.0.0.1:8092' "127.0.0.1:$hook_port"
substitute "$config" 'path = "data/smsflow.db"' "path = \"$dir/store/smsflow.db\""
substitute "$config" 'dir = "flows"' "dir = \"$root/flows\""
substitute "$config" 'dir = "target/plugins"' "dir = \"$root/target/plugins\""
substitute "$config" 'cache_dir = "target/plugin-cache"' "cache_dir = \"$root/target/plugin-cache\""
secret="$(sed -n 's/^secret = "\(whsec_[^"]*\)"/\1/p' "$config" | head -n 1)"

# --- the helpers, started in the background and stopped with the demo -------------------------
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

python3 "$root/scripts/demo/order_api.py" "$order_port" & pids+=($!)
python3 "$root/scripts/demo/webhook_receiver.py" "$hook_port" "$secret" & pids+=($!)
wait_for() { # URL WHAT: until something answers there (any status), for up to 2 minutes
  for _ in $(seq 1 1200); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$2 did not come up at $1" >&2
  exit 1
}
wait_for "http://127.0.0.1:$order_port/" "the fake order API"
wait_for "http://127.0.0.1:$hook_port/" "the webhook receiver"

if ! checked="$("$smsflow" check "$root/flows" --config "$config")"; then
  echo "$checked"; echo "the example flows do not check: fix them first" >&2; exit 1
fi
agent_secret=""
if [ ! -s "$dir/demo-agent.secret" ] || [ "$keep" = 0 ]; then
  "$smsflow" agents add demo --queues billing,support,sales,front-desk --supervisor --config "$config" \
    | tail -n 1 >"$dir/demo-agent.secret"
  chmod 600 "$dir/demo-agent.secret"
fi
agent_secret="$(cat "$dir/demo-agent.secret")"

cat <<EOF

==================================================================================================
 What you are looking at
==================================================================================================
 smsflow, one binary, is serving on $base with the example flows (flows/) and plugins.
 Nothing leaves this machine: the "console" provider prints each text it would send as
   [console] <our number> -> <contact>: <text>
 and three helpers print beside it:
   [webhook]    each event smsflow posts to the operator's system (a local receiver)
   [order api]  each lookup the order-status plugin makes (a fake shop API: A100, A200, A300)
 The steps below text the engine as contacts would (signed like Twilio webhooks), start an
 outbound flow through the API, and show the compliance gate refusing a text.
 The store is fresh (${dir}/store); \`just demo keep=1\` keeps it between runs.
 Texts are held during quiet hours in the contact's time zone (8am to 9pm in New York).
==================================================================================================

EOF

SMSFLOW_LOG="${SMSFLOW_LOG:-warn,smsflow=info}" "$smsflow" serve --config "$config" & pids+=($!)
wait_for "$base/healthz" "smsflow"

# Waits (up to 10 s) until nothing is left to process or send, so each step's texts are printed
# before the next step begins. Texts deferred by quiet hours stay queued: say so and go on.
settle() {
  for _ in $(seq 1 100); do
    local status
    status="$(curl -fsS -H "Authorization: Bearer $token" "$base/v1/status" 2>/dev/null || true)"
    if [ "$(jq -r '.inbox.pending + .outbox.due + .events.pending' <<<"$status" 2>/dev/null)" = 0 ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "(some texts are still queued: the gate holds them, e.g. for quiet hours; see GET /v1/status)"
}

step_number=0
# step "what it shows" COMMAND...: prints the command, waits for Enter (unless --run), runs it.
step() {
  local what="$1"
  shift
  step_number=$((step_number + 1))
  echo
  echo "--- step $step_number: $what"
  echo "\$ $*"
  if [ "$run" = 0 ]; then read -r -p "(Enter runs it) " _; fi
  "$@" || true
  settle
}

send() { "$smsflow" send-test --config "$config" --from "$1" "$2"; }
start() { # FLOW JSON
  curl -sS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$2" \
    "$base/v1/flows/$1/start" | jq .
  echo
}

step "a billing question goes to a person (the billing queue, watch the webhook)" \
  send +12125550100 'BILLING I was charged twice'
step "ORDER starts the order-status flow, which asks for the order number" \
  send +12125550101 'ORDER'
step "the reply is looked up in the (fake) order API through the order-status plugin" \
  send +12125550101 'A100'
step "an outbound flow started through the API: each text comes back with the gate's decision" \
  start appointment-confirmation '{"to": "+12125550102", "fields": {"first_name": "Ana", "date": "March 3", "time": "10:00"}}'
step "the contact confirms" \
  send +12125550102 'Yes please!'
step "a marketing text to a number that never opted in: the gate blocks it, the run ends (outcome blocked)" \
  start re-engagement '{"to": "+12125550103", "fields": {"first_name": "Bo"}}'
step "the contact opts out: one confirmation, and the gate stops every later text" \
  send +12125550102 'STOP'
step "the records, read while the server runs (through its operator API)" \
  "$smsflow" consent export +12125550102 --format csv --config "$config"
step "the conversation, as the operator API shows it" \
  bash -c "curl -sS -H 'Authorization: Bearer $token' $base/v1/conversations/+12125550101 | jq -c '.conversation.status, [.messages[].body]'"

if [ "$run" = 1 ]; then
  echo
  echo "--- the demo is over; stopping."
  exit 0
fi
cat <<EOF

--- next: try it yourself (the server keeps running; Ctrl-C stops everything)
 Phone simulator:  $base/simulator   (text as any number, e.g. ORDER, then A200)
 Agent inbox:      $base/inbox       (the BILLING conversation waits there)
   sign in with the demo agent's secret: $agent_secret
 From a terminal:  $smsflow send-test --config $config --from +12125550104 'ORDER'
 Read-only views:  $smsflow inbox --config $config
                   $smsflow dlq list --config $config
                   $smsflow consent verify --config $config
EOF
wait "${pids[-1]}"
