#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and prints what each did.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (`just fuzz 300`)
#
# Each target starts from its seeds (fuzz/corpus/<target>/) and kept crashes
# (fuzz/regressions/<target>/), which are only read; what libFuzzer adds, its log and any crash
# go to fuzz/target/runs/<target>/ (gitignored). FUZZ_SANITIZER=none builds without the address
# sanitizer, where it does not work. Exits 1 if a target crashed.

set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/.."

# cargo-fuzz passes nightly-only flags (-Zsanitizer, sanitizer coverage); this lets the stable
# compiler accept them, as it does when building itself.
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"
# -a: debug assertions and overflow checks, so arithmetic that overflows is a crash, not a wrap.
flags=(--fuzz-dir fuzz -a -s "$sanitizer")

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
cargo fuzz build "${flags[@]}"
# The binaries just built are run directly: `cargo fuzz run` would rebuild whenever engine/
# changed meanwhile, fuzzing another build than this one.
bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
# What `cargo fuzz run` sets: Rust's sanitizer runtime reports false ODR violations.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"

rows=()
crashed=0
for target in "${targets[@]}"; do
    run="fuzz/target/runs/$target"
    mkdir -p "$run/corpus" "$run/artifacts"
    inputs=("$run/corpus" "fuzz/corpus/$target")
    [[ -d "fuzz/regressions/$target" ]] && inputs+=("fuzz/regressions/$target")
    echo "fuzzing $target for ${seconds}s ..."
    start=$SECONDS
    result=ok
    "$bin/$target" "${inputs[@]}" \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$run/artifacts/" >"$run/log" 2>&1 || result=CRASH
    ran=$((SECONDS - start))
    executions=$(awk '/stat::number_of_executed_units/ {print $2}' "$run/log" | tail -n 1)
    if [[ -z "$executions" ]]; then
        # A crash stops libFuzzer before its final stats: take the last `#N` status line.
        executions=$(grep -oE '^#[0-9]+' "$run/log" | tail -n 1 | tr -d '#')
    fi
    if [[ $result == CRASH ]]; then
        crashed=1
        result="CRASH: $(ls -t "$run/artifacts" | head -n 1) (log: $run/log)"
    fi
    rows+=("$(printf '%-16s %8s %14s  %s' "$target" "$ran" "${executions:-?}" "$result")")
done

printf '\n%-16s %8s %14s  %s\n' target seconds executions result
printf '%s\n' "${rows[@]}"
if [[ $crashed == 1 ]]; then
    echo
    echo "minimise a crash with: RUSTC_BOOTSTRAP=1 cargo fuzz tmin ${flags[*]} <target> <artifact>,"
    echo "then keep it in fuzz/regressions/<target>/ (engine/tests/fuzz_regressions.rs runs it)."
    exit 1
fi
