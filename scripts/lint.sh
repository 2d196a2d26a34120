#!/usr/bin/env bash
# Static analysis: clang-format check and clang-tidy (config in .clang-tidy, thread-safety
# analysis on) over the project's sources, or over the files given as arguments.
# Needs a configured build tree for compile_commands.json (default build/asan, made by
# scripts/test.sh). clang-tidy is slow (grpc headers): expect minutes for the whole tree.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${DISCOVERY_LINT_BUILD:-build/asan}
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files 'src/*.cc' 'cmd/*.cc')
fi
git ls-files '*.h' '*.cc' | xargs clang-format --dry-run -Werror
run-clang-tidy -quiet -p "$build" -extra-arg=-Wthread-safety -j "$(nproc)" "${files[@]}"
