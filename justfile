# The commands people type. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build every plugin to a component in target/plugins/ (installs what the build needs).
plugins:
    scripts/build-plugins.sh

# Install what the browser test needs (Debian's chromium, playwright-core from the lockfile).
browser-deps:
    scripts/browser-deps.sh

# Run the inbox's browser test and copy its screenshots into docs/ (the README shows them).
screenshots: plugins browser-deps
    cargo test -p smsflow --test inbox an_agent_signs_in -- --nocapture
    cp target/screenshots/inbox.png target/screenshots/simulator.png docs/

# Build the engine (release).
build:
    cargo build --release -p smsflow

# Every test: the plugins' own, the engine's (hostile plugins, example plugins over real HTTP, the
# inbox in headless Chromium), lints.
test: plugins browser-deps
    cd plugins && cargo test
    cd plugins && cargo test -p smsflow-plugin-sdk --features classifier --doc
    cargo test --workspace
    cargo fmt --all --check
    cd plugins && cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cd plugins && cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks against the machine's HTTP ceiling, in one run (under 15 minutes on 2 cores after
# building): bare HTTP, smsflow end to end (HELP, a classified reply, texts no flow matches), the
# plugin call, seeded stores. Writes bench/results/<date>.json and the table in BENCHMARKS.md.
bench *args: plugins
    cargo build --release -p smsflow -p smsflow-bench
    cargo bench -p smsflow --bench plugin_call --no-run
    cargo run --release -p smsflow-bench --bin bench -- {{args}}

# `just bench` with every part a few seconds: checks the harness (BENCHMARKS.md is left alone).
bench-quick:
    just bench --quick

# The micro-benchmarks: plugin call, flow turn, ingest latency, the gate, a turn's store writes,
# memory held by unfinished request heads.
bench-micro: plugins
    cargo bench -p smsflow

# The compliance property with a million random cases (release build; about 45 minutes on 2 cores).
prop-long: plugins
    PROPTEST_CASES=1000000 cargo test --release -p smsflow --test compliance_engine no_sequence -- --nocapture

# Check the example flows and run their scenarios with the real plugins.
flows: plugins
    cargo run -q -p smsflow -- check flows/
    cargo run -q -p smsflow -- test flows/

# Run smsflow with the example flows and plugins on the console provider (no account needed).
demo: plugins build
    target/release/smsflow check flows/
    @# A demo agent for the inbox; its one-time secret is kept in data/ (the demo's own store).
    @mkdir -p data
    @if [ ! -s data/demo-agent.secret ]; then \
        target/release/smsflow agents add demo --queues billing,support,sales,front-desk --supervisor --config smsflow.toml \
          | tail -n 1 > data/demo-agent.secret && chmod 600 data/demo-agent.secret; fi
    @echo
    @echo "Starting smsflow on http://127.0.0.1:8080 (Ctrl-C stops it). Texts it sends are printed here."
    @echo "Open the phone simulator at http://127.0.0.1:8080/simulator and text BILLING I was charged twice,"
    @echo "then the agent inbox at http://127.0.0.1:8080/inbox and sign in with the demo agent's secret:"
    @echo "  $(cat data/demo-agent.secret)"
    @echo "Or text it from a terminal, signed like a Twilio webhook:"
    @echo "  target/release/smsflow send-test --from +12125550100 'BILLING I was charged twice'"
    @echo "  target/release/smsflow send-test --from +12125550101 'ORDER'"
    @echo "Start an outbound flow through the API, and read a conversation back:"
    @echo "  curl -s -H 'Authorization: Bearer demo-token' -H 'Content-Type: application/json' \\"
    @echo "    -d '{\"to\": \"+12125550102\", \"fields\": {\"first_name\": \"Ana\", \"date\": \"March 3\", \"time\": \"10:00\"}}' \\"
    @echo "    http://127.0.0.1:8080/v1/flows/appointment-confirmation/start"
    @echo "  target/release/smsflow send-test --from +12125550102 'Yes please!'"
    @echo "  curl -s -H 'Authorization: Bearer demo-token' http://127.0.0.1:8080/v1/conversations/+12125550102"
    @echo "Opt out, and see the gate stop the next text (quiet hours apply in the contact's time zone):"
    @echo "  target/release/smsflow send-test --from +12125550102 'STOP'"
    @echo
    target/release/smsflow serve --config smsflow.toml

# Try a plugin: classify a text with the keyword-intents component.
try-plugin text="Yes please!": plugins build
    target/release/smsflow plugin inspect target/plugins/keyword-intents.wasm
    target/release/smsflow plugin call target/plugins/keyword-intents.wasm --input '{"text": "{{text}}"}'
