#!/usr/bin/env bash
# Builds every plugin under plugins/ to a WebAssembly component in target/plugins/ (or
# $PLUGINS_OUT), with its manifest beside it (<name>.wasm and <name>.plugin.toml).
#
# A plugin is a folder of plugins/ (other than the SDK) with a plugin.toml or <name>.plugin.toml:
# one made with `smsflow plugin new NAME --world ... --dir plugins` is built with the examples.
# Its crate is named like the plugin, as `plugin new` names it.
#
# Two routes, whichever this machine allows:
#  - rustup's wasm32-unknown-unknown target, when it is installed;
#  - otherwise Debian's rustc/cargo with the standard library's sources (-Zbuild-std), installed
#    here with apt-get when missing (see docs/wasm-toolchain.md).
# wasm-tools (crates.io) turns each core module into a component.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="${PLUGINS_OUT:-$root/target/plugins}"
wasm_tools_version=1.263.0
target=wasm32-unknown-unknown

say() { echo "build-plugins: $*" >&2; }

# The manifest of the plugin in folder $1, if it has one: <name>.plugin.toml, else plugin.toml.
manifest_of() {
  local found
  for found in "$1"/*.plugin.toml "$1"/plugin.toml; do
    if [ -f "$found" ]; then echo "$found"; return; fi
  done
}

plugins=()
dirs=()
for dir in "$root"/plugins/*/; do
  dir=${dir%/}
  [ "$(basename "$dir")" = sdk ] && continue
  manifest=$(manifest_of "$dir")
  [ -n "$manifest" ] || continue
  plugins+=("$(sed -n 's/^name *= *"\(.*\)".*/\1/p' "$manifest" | head -n 1)")
  dirs+=("$dir")
done
[ "${#plugins[@]}" -gt 0 ] || { say "no plugin under $root/plugins"; exit 1; }
say "plugins: ${plugins[*]}"

if ! command -v wasm-tools >/dev/null 2>&1; then
  say "installing wasm-tools $wasm_tools_version from crates.io (once, a few minutes)"
  cargo install wasm-tools --locked --version "$wasm_tools_version"
fi

cd "$root/plugins"
# One cargo run per plugin: built together, cargo would unify the SDK's world features and
# every component would carry the other worlds' types. By manifest path rather than -p, so a
# plugin crate of its own (not a member of plugins/Cargo.toml's workspace) builds too; one
# target folder for all, so the SDK and std are built once.
export CARGO_TARGET_DIR="$root/plugins/target"
build_each() {
  for dir in "${dirs[@]}"; do "$@" --manifest-path "$dir/Cargo.toml"; done
}

if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  say "building with rustup's $target target"
  build_each cargo build --release --target "$target"
else
  missing=()
  for package in rustc-web cargo-web rust-web-src lld; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "rustup has no $target target here; installing Debian's ${missing[*]} to build std from source"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    $sudo_cmd apt-get install -y -q "${missing[@]}"
  fi
  say "building with Debian's rustc and -Zbuild-std"
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld
  build_each /usr/bin/cargo build --release --target "$target" -Zbuild-std=std,panic_abort
fi

mkdir -p "$out"
for i in "${!plugins[@]}"; do
  plugin=${plugins[$i]}
  core="$CARGO_TARGET_DIR/$target/release/${plugin//-/_}.wasm"
  wasm-tools component new "$core" -o "$out/$plugin.wasm"
  cp "$(manifest_of "${dirs[$i]}")" "$out/$plugin.plugin.toml"
  say "$out/$plugin.wasm ($(stat -c %s "$out/$plugin.wasm") bytes)"
done
