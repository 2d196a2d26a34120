#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan+UBSan) and runs each for a bounded
# time on a copy of its seed corpus (fuzz/corpus/<target>/, so the repository is not touched).
#   scripts/fuzz.sh                 30 s per target (CI)
#   scripts/fuzz.sh 600             10 min per target (before a release, after parser changes)
#   scripts/fuzz.sh 60 selector jwt only these targets
# Exits non-zero when a target finds a crash, a sanitizer report, a leak, a timeout (-timeout)
# or an out-of-memory (-rss_limit_mb) and prints the saved input; reproduce with
#   build/fuzz/fuzz/discovery_<target>_fuzzer <input>
# Findings are kept under build/fuzz/findings/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
all_targets=(selector endpoint rest_json jwt config_yaml http_framing yaml_output)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=("${all_targets[@]}")
fi

# clang's sanitizer and libFuzzer runtimes (libclang-rt-14-dev) come with the other packages.
scripts/setup.sh

export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1

echo "== fuzz build (clang, ASan+UBSan, libFuzzer)" >&2
# -O1 builds quickly and keeps assertions (no NDEBUG); line tables are enough for stack traces.
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
  -DDISCOVERY_BUILD_FUZZERS=ON -DDISCOVERY_BUILD_TESTS=OFF -DDISCOVERY_BUILD_BENCHMARKS=OFF \
  >/dev/null
build_targets=()
for target in "${targets[@]}"; do
  build_targets+=("discovery_${target}_fuzzer")
done
cmake --build build/fuzz -j"${FUZZ_BUILD_JOBS:-2}" --target "${build_targets[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# ASan's default 256 MB quarantine (plus what it costs to track) grows a long run past
# -rss_limit_mb; 64 MB still catches a use after free within one input.
export ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=64:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

failed=()
for target in "${targets[@]}"; do
  echo "== fuzz ${target} for ${seconds}s" >&2
  findings="build/fuzz/findings/${target}"
  mkdir -p "$findings"
  cp -r "fuzz/corpus/${target}" "$work/${target}"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$findings/")
  if [[ -f "fuzz/dict/${target}.dict" ]]; then
    args+=(-dict="fuzz/dict/${target}.dict")
  fi
  log="$work/${target}.log"
  if "build/fuzz/fuzz/discovery_${target}_fuzzer" "${args[@]}" "$work/${target}" >"$log" 2>&1; then
    # The last status line ("#runs DONE cov: ... ft: ... corp: ...") and the speed.
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 >&2 || true
    grep -E 'stat::(number_of_executed_units|average_exec_per_sec)' "$log" >&2 || true
  else
    tail -n 60 "$log" >&2
    echo "FINDING in ${target}:" >&2
    grep -E 'Test unit written to' "$log" | sed 's/.*Test unit written to /  input: /' >&2 || true
    failed+=("$target")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing found nothing in: ${targets[*]}" >&2
