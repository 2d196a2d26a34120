#!/usr/bin/env bash
# Builds and runs the whole test suite on a fresh Debian 12 machine:
#   1. installs what is missing (scripts/setup.sh),
#   2. checks formatting,
#   3. builds the previous release's discoveryd from this repository's history (the upgrade test
#      runs it next to this release on one etcd),
#   4. builds everything with AddressSanitizer + UndefinedBehaviorSanitizer and runs every test
#      (unit tests and integration tests; the integration tests start a real etcd-server on free
#      loopback ports themselves and stop it),
#   5. builds with ThreadSanitizer and runs the tests of the concurrent parts (label "concurrent"),
#   6. builds the libFuzzer targets with clang and runs each for 20 s,
#   7. builds in Release and runs the fleet benchmarks once at 100,000 services against a
#      throw-away etcd (bench/fleet_smoke.sh: outcomes only, the ratios are printed),
#   8. builds the Debian package in Release and installs, runs and purges it (tests/package; this
#      changes the machine while it runs, so it runs only as root where the package's user and
#      /var/lib/discovery* do not exist, as on CI's throw-away machine).
# Build trees live under build/ (reused, so re-runs are incremental; ccache speeds up rebuilds).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# Let ccache share results between clones in different directories (CI clones afresh).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1

echo "== format check" >&2
git ls-files '*.h' '*.cc' | xargs clang-format --dry-run -Werror

echo "== the previous release's discoveryd (for the rolling-upgrade test)" >&2
DISCOVERY_PREVIOUS_DISCOVERYD="$(scripts/build_previous_release.sh)"
export DISCOVERY_PREVIOUS_DISCOVERYD

echo "== ASan+UBSan build and all tests" >&2
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DDISCOVERY_SANITIZE="address;undefined" -DDISCOVERY_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/asan
ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp" ctest --test-dir build/asan --output-on-failure -j2

echo "== TSan build and tests of the concurrent parts" >&2
cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DDISCOVERY_SANITIZE=thread -DDISCOVERY_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/tsan --target discovery_concurrent_tests
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=7" \
  ctest --test-dir build/tsan --output-on-failure -j2 -L concurrent

echo "== libFuzzer targets, 20 s each (scripts/fuzz.sh 600 for a longer run)" >&2
scripts/fuzz.sh 20

echo "== Release build, the fleet benchmarks' smoke run (100,000 services, no thresholds)" >&2
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDISCOVERY_BUILD_TESTS=OFF -DDISCOVERY_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build/release --target discovery_fleet_bench
bench/fleet_smoke.sh build/release

echo "== Debian package and its install test" >&2
cmake --build build/release --target package
# The install test takes the package's user and /var/lib/discovery* for itself and purges them
# afterwards, so it runs only as root on a machine where none of them exist (a fresh machine,
# as in CI). A development run (`scripts/run.sh`) keeps its data in ~/.local/share/discovery and
# does not stand in its way.
if [ "$(id -u)" != 0 ]; then
  echo "test.sh: package install test skipped: it needs root" >&2
elif ! obstacles="$(tests/package/package_test.sh --check-machine)"; then
  echo "test.sh: package install test skipped: this machine holds what the package owns:" >&2
  printf '%s\n' "$obstacles" >&2
  echo "test.sh: remove those to run it (CI's fresh machine never has them)" >&2
else
  DISCOVERY_PACKAGE_TEST=1 ctest --test-dir build/release -L package --output-on-failure
fi
