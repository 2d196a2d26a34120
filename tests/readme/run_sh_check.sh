#!/usr/bin/env bash
# The README's first command as a user runs it: starts `scripts/run.sh` (setup, Release build,
# discoveryd on the embedded store), drives it with the `discovery` CLI as the README shows,
# then stops it with Ctrl-C (SIGINT) and expects a clean exit. `.ci/run` runs it before and after
# `scripts/test.sh`, so the two README commands are shown to pass in either order on one machine.
#
# Usage: tests/readme/run_sh_check.sh     (needs the ports 3001 and 3002 of localhost free)
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() {
  echo "run_sh_check: FAIL: $*" >&2
  [ -f "${log:-}" ] && tail -n 40 "$log" >&2
  exit 1
}

log=$(mktemp /tmp/run_sh_check.XXXXXX.log)
# A process group of its own, so Ctrl-C can be sent to run.sh's group as a terminal would.
setsid scripts/run.sh >"$log" 2>&1 &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    timeout 10 tail --pid="$pid" -f /dev/null || kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$log"
}
trap cleanup EXIT

# run.sh builds first (minutes on a fresh machine), then serves.
deadline=$((SECONDS + 3600))
until curl -fsS -o /dev/null http://localhost:3002/readyz 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || fail "scripts/run.sh exited before the server was ready"
  ((SECONDS < deadline)) || fail "no /readyz on localhost:3002 within an hour"
  sleep 1
done
echo "run_sh_check: scripts/run.sh serves; its log:" >&2
grep '^run.sh:' "$log" >&2 || true

discovery=build/release/cmd/discovery/discovery
discoveryd=build/release/cmd/discoveryd/discoveryd
# The README's workflow with the CLI's own configuration and token, which run.sh provides.
"$discovery" server register run-sh-check.example.com --labels=environment=run-sh-check ||
  fail "discovery server register"
"$discovery" server list --no-headers | grep -q '^run-sh-check.example.com ' ||
  fail "discovery server list does not show the server"
"$discovery" service register -e http://run-sh-check.example.com:9100/metrics run-sh-check \
  --selector=environment=run-sh-check || fail "discovery service register"
token=$("$discoveryd" token create run-sh-check --admin) || fail "discoveryd token create"
curl -fsS -H "authorization: bearer $token" \
  localhost:3002/v1/sd/run-sh-check.example.com/default | grep -q 'run-sh-check.example.com:9100' ||
  fail "http_sd does not list the registered target"
"$discovery" service unregister -n default http://run-sh-check.example.com:9100/metrics ||
  fail "discovery service unregister"
"$discovery" server unregister run-sh-check.example.com || fail "discovery server unregister"

# Ctrl-C: the terminal sends SIGINT to the foreground process group.
kill -INT -- "-$pid"
status=0
timeout 20 tail --pid="$pid" -f /dev/null || fail "scripts/run.sh did not stop within 20 s of Ctrl-C"
wait "$pid" || status=$?
[ "$status" = 0 ] || fail "scripts/run.sh exited with $status after Ctrl-C"
echo "run_sh_check: ok (started, used with the CLI, stopped with Ctrl-C)" >&2
