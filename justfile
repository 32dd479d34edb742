# The commands people type. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build every plugin to a component in target/plugins/ (installs what the build needs).
plugins:
    scripts/build-plugins.sh

# Build the engine (release).
build:
    cargo build --release -p smsflow

# Every test: the plugins' own, the engine's (hostile plugins, example plugins over real HTTP), lints.
test: plugins
    cd plugins && cargo test
    cargo test --workspace
    cargo fmt --all --check
    cd plugins && cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cd plugins && cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: a plugin call (fresh instance + classify) against the same classifier compiled natively.
bench: plugins
    cargo bench -p smsflow --bench plugin_call

# Try a plugin: classify a text with the keyword-intents component.
demo text="Yes please!": plugins build
    target/release/smsflow plugin inspect target/plugins/keyword-intents.wasm
    target/release/smsflow plugin call target/plugins/keyword-intents.wasm --input '{"text": "{{text}}"}'
