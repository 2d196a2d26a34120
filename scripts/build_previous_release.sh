#!/usr/bin/env bash
# Builds the discoveryd of the previous release (the commit named in
# tests/data/previous-release/answers.json) from this repository's history, in Release, under
# build/previous/<commit>/, and prints the binary's path. The rolling-upgrade test runs it next
# to this release's discoveryd on one etcd (DISCOVERY_PREVIOUS_DISCOVERYD). Prints nothing, and
# says why on stderr, when the history does not hold that commit (e.g. a shallow clone).
set -euo pipefail
cd "$(dirname "$0")/.."
release=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["release"])' \
  tests/data/previous-release/answers.json)
if ! git cat-file -e "${release}^{commit}" 2>/dev/null; then
  echo "build_previous_release.sh: commit $release is not in this clone's history;" \
    "the rolling-upgrade test will be skipped" >&2
  exit 0
fi
root="build/previous/$release"
if [ ! -f "$root/src/CMakeLists.txt" ]; then
  rm -rf "$root/src"
  mkdir -p "$root/src"
  git archive "$release" | tar -x -C "$root/src"
fi
cmake -S "$root/src" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDISCOVERY_BUILD_TESTS=OFF -DDISCOVERY_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$root/build" --target discoveryd >&2
echo "$PWD/$root/build/cmd/discoveryd/discoveryd"
