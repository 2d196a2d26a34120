#!/usr/bin/env bash
# Install test of the discovery Debian package. Builds the package (or takes a .deb), checks its
# contents, installs it with dpkg, checks the system user and the state directories, starts the
# command lines of both systemd units by hand (as systemd would: the unit's User=, its
# EnvironmentFile=, a clean environment), drives the server with the installed `discovery` CLI,
# then removes and purges the package and checks what stays and what goes.
#
# Usage: tests/package/package_test.sh --build-dir build/release    (builds the `package` target)
#        tests/package/package_test.sh path/to/discovery_<version>_<arch>.deb
#        tests/package/package_test.sh --check-machine   (exit 0 when this machine is fit for
#                                          the test, else list what to remove and exit 1)
#
# It changes the machine while it runs (a package, a user, /var/lib/discovery), so it needs root
# and DISCOVERY_PACKAGE_TEST=1 (exit 77, "skipped", otherwise), refuses to run where discovery
# is already installed or the user exists, and purges everything again on every exit path.
# No systemd needed; when systemd is PID 1 the units are also checked through systemctl.
set -euo pipefail

# shellcheck source=scripts/lib/free_port.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/free_port.sh"

fail() {
  echo "package_test: FAIL: $*" >&2
  exit 1
}
step() { echo "== $*" >&2; }

deb=""
build_dir=""
mode=run
case "${1:-}" in
  --build-dir) build_dir="${2:?--build-dir needs a directory}" ;;
  --check-machine) mode=check ;;
  *.deb) deb="$1" ;;
  *) fail "usage: $0 --build-dir DIR | PACKAGE.deb | --check-machine" ;;
esac

if [ "$mode" = run ] && [ "${DISCOVERY_PACKAGE_TEST:-}" != 1 ]; then
  echo "package_test: skipped; set DISCOVERY_PACKAGE_TEST=1 to install the package on this machine" >&2
  exit 77
fi
if [ "$mode" = run ] && [ "$(id -u)" != 0 ]; then
  echo "package_test: skipped; needs root (dpkg -i)" >&2
  exit 77
fi

# One run at a time on a machine.
if [ "$mode" = run ]; then
  mkdir -p /run/lock
  exec 9>/run/lock/discovery-package-test.lock
  flock -w 600 9 || fail "another package test holds /run/lock/discovery-package-test.lock"
fi

# The package's own places must be free: the test installs into them and purges them again.
# Prints what occupies them and the command that frees each; no output when the machine is fit.
machine_obstacles() {
  if dpkg-query -W -f='${Status}' discovery 2>/dev/null | grep -qv "not-installed"; then
    echo "  the discovery package is installed; remove it with: dpkg --purge discovery"
  fi
  if getent passwd discovery >/dev/null; then
    echo "  a user 'discovery' exists; remove it with: userdel discovery"
  fi
  if getent group discovery >/dev/null; then
    echo "  a group 'discovery' exists; remove it with: groupdel discovery"
  fi
  for dir in /var/lib/discovery /var/lib/discovery-exporter; do
    if [ -e "$dir" ]; then
      echo "  $dir exists; remove it (after saving what you need) with: rm -rf $dir"
    fi
  done
}
obstacles="$(machine_obstacles)"
if [ "$mode" = check ]; then
  [ -z "$obstacles" ] && exit 0
  printf '%s\n' "$obstacles"
  exit 1
fi
if [ -n "$obstacles" ]; then
  fail "this machine already holds what the package owns; not touching it:
$obstacles"
fi

tmp=$(mktemp -d /tmp/discovery-package-test.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  if dpkg-query -W -f='${Status}' discovery 2>/dev/null | grep -qv "not-installed"; then
    echo "package_test: purging discovery" >&2
    dpkg --purge discovery >/dev/null 2>&1 || echo "package_test: dpkg --purge failed" >&2
  fi
  if [ $status -ne 0 ]; then
    for log in "$tmp"/*.log; do
      [ -f "$log" ] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }
    done
  fi
  rm -rf "$tmp"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$build_dir" ]; then
  step "building the package in $build_dir"
  rm -f "$build_dir"/discovery_*.deb
  cmake --build "$build_dir" --target package >"$tmp/cpack.log" 2>&1 || {
    tail -n 40 "$tmp/cpack.log" >&2
    fail "cmake --build $build_dir --target package"
  }
  deb=$(ls -t "$build_dir"/discovery_*.deb | head -n1)
  version=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
fi
[ -f "$deb" ] || fail "no package at '$deb'"
echo "package: $deb" >&2

# ---------------------------------------------------------------------------------------------
step "package metadata and contents"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = discovery ] || fail "Package is '$(field Package)'"
if [ -n "${version:-}" ]; then
  [ "$(field Version)" = "$version-1" ] || fail "Version $(field Version), project version $version"
fi
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture $(field Architecture)"
depends=$(field Depends)
echo "Depends: $depends" >&2
for dep in adduser libc6 libstdc++6 libgrpc++1.51 libsqlite3-0 libssl3; do
  [[ ", $depends," == *", $dep "* || ", $depends," == *", $dep,"* ]] ||
    fail "Depends lacks $dep (dpkg-shlibdeps): $depends"
done

dpkg-deb -c "$deb" >"$tmp/contents"
# "<mode> <owner> <size> <date> <time> <path>": mode, owner and path only.
awk '{print $1, $2, $6}' "$tmp/contents" >"$tmp/files"
expect_file() {  # MODE PATH
  grep -qxF -e "$1 root/root ./${2#/}" "$tmp/files" || fail "package lacks $2 with mode $1"
}
expect_file -rwxr-xr-x /usr/bin/discovery
expect_file -rwxr-xr-x /usr/bin/discoveryd
expect_file -rw-r--r-- /lib/systemd/system/discoveryd.service
expect_file -rw-r--r-- /lib/systemd/system/discovery-exporter.service
expect_file -rw-r----- /etc/default/discoveryd
expect_file -rw-r----- /etc/default/discovery-exporter
expect_file -rw-r--r-- /usr/share/bash-completion/completions/discovery
expect_file -rw-r--r-- /usr/share/bash-completion/completions/discoveryd
expect_file -rw-r--r-- /usr/share/discovery/prometheus/discovery-alerts.yml
unexpected=$(awk '$1 !~ /^d/ {print $3}' "$tmp/files" | grep -vxE '\./usr/bin/discoveryd?|\./lib/systemd/system/discovery(d|-exporter)\.service|\./etc/default/discovery(d|-exporter)|\./usr/share/bash-completion/completions/discoveryd?|\./usr/share/discovery/prometheus/discovery-alerts\.yml' || true)
[ -z "$unexpected" ] || fail "unexpected files in the package: $unexpected"

dpkg-deb -e "$deb" "$tmp/control"
[ "$(sort "$tmp/control/conffiles")" = "$(printf '/etc/default/discovery-exporter\n/etc/default/discoveryd')" ] ||
  fail "conffiles: $(cat "$tmp/control/conffiles")"
for script in postinst prerm postrm; do
  [ -x "$tmp/control/$script" ] || fail "no executable $script"
  sh -n "$tmp/control/$script" || fail "$script: syntax"
done
if dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/discoveryd | file - | grep -q "not stripped"; then
  fail "discoveryd is not stripped"
fi

# ---------------------------------------------------------------------------------------------
step "dpkg -i"
dpkg -i "$deb" >"$tmp/dpkg-install.log" 2>&1 || { cat "$tmp/dpkg-install.log" >&2; fail "dpkg -i"; }
dpkg-query -W -f='${Status}\n' discovery | grep -qx "install ok installed" || fail "not installed"

step "system user, directories, files"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd discovery) || fail "no user discovery"
[ "$uid" -lt 1000 ] || fail "discovery is not a system user (uid $uid)"
[ "$(getent group discovery | cut -d: -f3)" = "$gid" ] || fail "discovery's primary group is not discovery"
[ "$shell" = /usr/sbin/nologin ] || fail "discovery's shell is $shell"
[ "$home" = /var/lib/discovery ] || fail "discovery's home is $home"
expect_stat() {  # PATH "MODE USER GROUP"
  local got
  got=$(stat -c '%a %U %G' "$1") || fail "$1 missing"
  [ "$got" = "$2" ] || fail "$1 is '$got', expected '$2'"
}
expect_stat /var/lib/discovery "750 discovery discovery"
expect_stat /var/lib/discovery-exporter "755 discovery discovery"
expect_stat /etc/default/discoveryd "640 root root"
expect_stat /etc/default/discovery-exporter "640 root root"
expect_stat /usr/bin/discoveryd "755 root root"
expect_stat /usr/bin/discovery "755 root root"
# The alerting rules for discovery itself, valid for Debian's promtool where it is installed.
expect_stat /usr/share/discovery/prometheus/discovery-alerts.yml "644 root root"
if command -v promtool >/dev/null; then
  promtool check rules /usr/share/discovery/prometheus/discovery-alerts.yml >/dev/null ||
    fail "promtool check rules discovery-alerts.yml"
fi
/usr/bin/discovery --version | grep -q "^discovery, version ${version:-}" || fail "discovery --version"
# The package's version and both binaries' --version come from the project version.
/usr/bin/discoveryd --version | grep -q "^discoveryd, version ${version:-}" ||
  fail "discoveryd --version"
! /usr/bin/discoveryd --version | grep -q "revision: 12345678\|2020-09-23" ||
  fail "discoveryd --version prints placeholders"
# discoveryd is enabled (the symlink deb-systemd-helper makes, with or without systemd running);
# the exporter waits for its configuration.
[ -L /etc/systemd/system/multi-user.target.wants/discoveryd.service ] || fail "discoveryd.service not enabled"
[ ! -e /etc/systemd/system/multi-user.target.wants/discovery-exporter.service ] ||
  fail "discovery-exporter.service enabled without configuration"
bash -c 'source /usr/share/bash-completion/completions/discovery
         COMP_WORDS=(discovery se); COMP_CWORD=1; _discovery; [ "${COMPREPLY[*]}" = "server service" ]' ||
  fail "installed bash completion of discovery"
bash -c 'source /usr/share/bash-completion/completions/discoveryd; complete -p discoveryd' >/dev/null ||
  fail "installed bash completion of discoveryd"

systemd_running=false
if [ -d /run/systemd/system ]; then
  case "$(systemctl is-system-running 2>/dev/null)" in
    running | degraded) systemd_running=true ;;
  esac
fi
if $systemd_running; then
  step "systemd is running: discoveryd.service"
  for _ in $(seq 50); do
    curl -fsS http://localhost:3002/healthz >/dev/null 2>&1 && break
    sleep 0.2
  done
  systemctl is-active --quiet discoveryd.service || fail "discoveryd.service is not active after install"
  curl -fsS http://localhost:3002/healthz >/dev/null || fail "discoveryd.service: /healthz"
  systemctl stop discoveryd.service
fi

# unit_value UNIT KEY: the value of KEY= in the installed unit.
unit_value() { sed -n "s/^$2=//p" "/lib/systemd/system/$1" | tail -n1; }

# start_unit UNIT LOG VAR=VALUE...: runs the unit's ExecStart as its User=/Group= in a clean
# environment holding its Environment= and EnvironmentFile= plus the given overrides (the listen ports), from /,
# as systemd does; sets `started` to its pid. systemd reads EnvironmentFile= as KEY=VALUE lines (not shell),
# so the file is read the same way.
start_unit() {
  local unit=$1 log=$2
  shift 2
  local exec_start user group env_file
  exec_start=$(unit_value "$unit" ExecStart)
  user=$(unit_value "$unit" User)
  group=$(unit_value "$unit" Group)
  env_file=$(unit_value "$unit" EnvironmentFile)
  env_file=${env_file#-}
  local -a environment=("PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$home" "USER=$user" "LOGNAME=$user")
  # Environment= first: EnvironmentFile= overrides it, as in systemd.
  mapfile -t -O "${#environment[@]}" environment < <(sed -n 's/^Environment=//p' "/lib/systemd/system/$unit")
  if [ -f "$env_file" ]; then
    mapfile -t -O "${#environment[@]}" environment < <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$env_file")
  fi
  local -a command
  read -r -a command <<<"${exec_start#[-@+!]}"
  echo "$unit: ${command[*]} as $user:$group with $env_file $*" >&2
  (cd / && exec setpriv --reuid="$user" --regid="$group" --init-groups -- \
     env -i "${environment[@]}" "$@" "${command[@]}") >"$log" 2>&1 &
  started=$!
  pids+=("$started")
}

# wait_http URL SECONDS: until URL answers 2xx.
wait_http() {
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# stop PID: SIGTERM and a clean exit within 10 s.
stop() {
  kill -TERM "$1"
  local status=0
  timeout 10 tail --pid="$1" -f /dev/null || fail "pid $1 did not stop within 10 s of SIGTERM"
  wait "$1" || status=$?
  [ "$status" = 0 ] || fail "pid $1 exited with $status after SIGTERM"
}

step "discoveryd.service's command line, by hand"
grpc_port=$(free_port)
http_port=$(free_port)
start_unit discoveryd.service "$tmp/discoveryd.log" \
  "DISCOVERY_GRPC_LISTEN=127.0.0.1:$grpc_port" "DISCOVERY_HTTP_LISTEN=127.0.0.1:$http_port"
server_pid=$started
wait_http "http://127.0.0.1:$http_port/healthz" 30 || fail "discoveryd: no /healthz within 30 s"
wait_http "http://127.0.0.1:$http_port/readyz" 30 || fail "discoveryd: no /readyz within 30 s"
[ "$(stat -c %U "/proc/$server_pid")" = discovery ] || fail "discoveryd does not run as discovery"
[ "$(readlink "/proc/$server_pid/exe")" = /usr/bin/discoveryd ] || fail "pid $server_pid is not discoveryd"
# The embedded store and the token secret were created by the daemon, as its user, privately.
expect_stat /var/lib/discovery/token-secret "600 discovery discovery"
expect_stat /var/lib/discovery/discovery.db "600 discovery discovery"

step "the discovery CLI against it"
token=$(setpriv --reuid=discovery --regid=discovery --init-groups -- \
  env -i HOME=/var/lib/discovery DISCOVERY_DATA_DIR=/var/lib/discovery \
  /usr/bin/discoveryd token create package-test --admin) || fail "discoveryd token create"
printf 'machine_token: %s\n' "$token" >"$tmp/token"
mkdir -p "$tmp/home"
cli() {
  (cd "$tmp/home" && HOME="$tmp/home" timeout 30 /usr/bin/discovery --insecure \
     -a "127.0.0.1:$grpc_port" --token-path "$tmp/token" "$@")
}
cli server register prometheus1.example.com --labels=environment=test || fail "server register"
cli service register -e http://example.com/metrics example --selector=environment=test ||
  fail "service register"
cli server list --no-headers | grep -q "^prometheus1.example.com " || fail "server list"
cli service list -o json >"$tmp/services.json" || fail "service list"
grep -q '"endpoint": *"http://example.com/metrics"' "$tmp/services.json" &&
  grep -q 'prometheus1.example.com' "$tmp/services.json" || fail "service list: $(cat "$tmp/services.json")"
curl -fsS -H "authorization: bearer $token" \
  "http://127.0.0.1:$http_port/v1/sd/prometheus1.example.com/default" | grep -q '"example.com"' ||
  fail "http_sd does not list example.com"

step "discovery-exporter.service's command line, by hand"
exporter_port=$(free_port)
start_unit discovery-exporter.service "$tmp/exporter.log" \
  "DISCOVERY_HTTP_LISTEN=127.0.0.1:$exporter_port"
exporter_pid=$started
exported=/var/lib/discovery-exporter/prometheus1.example.com/default/example.json
deadline=$((SECONDS + 30))
until [ -f "$exported" ]; do
  ((SECONDS < deadline)) || fail "the exporter wrote no $exported within 30 s"
  sleep 0.2
done
grep -q '"example.com"' "$exported" || fail "$exported: $(cat "$exported")"
[ "$(stat -c %U "$exported")" = discovery ] || fail "$exported not written by discovery"
wait_http "http://127.0.0.1:$exporter_port/healthz" 10 || fail "exporter: no /healthz"

step "stopping both"
stop "$exporter_pid"
stop "$server_pid"
pids=()

# ---------------------------------------------------------------------------------------------
step "dpkg --remove: binaries go, configuration, user and state stay"
dpkg --remove discovery >"$tmp/dpkg-remove.log" 2>&1 || { cat "$tmp/dpkg-remove.log" >&2; fail "dpkg --remove"; }
dpkg-query -W -f='${Status}\n' discovery | grep -qx "deinstall ok config-files" || fail "not in config-files state"
for gone in /usr/bin/discovery /usr/bin/discoveryd /lib/systemd/system/discoveryd.service \
  /lib/systemd/system/discovery-exporter.service /usr/share/bash-completion/completions/discovery \
  /usr/share/discovery/prometheus/discovery-alerts.yml; do
  [ ! -e "$gone" ] || fail "$gone left after remove"
done
[ -f /etc/default/discoveryd ] && [ -f /etc/default/discovery-exporter ] || fail "conffiles gone after remove"
[ -f /var/lib/discovery/token-secret ] || fail "state gone after remove"
getent passwd discovery >/dev/null || fail "user gone after remove"

step "dpkg --purge: configuration, state, user and enablement go"
dpkg --purge discovery >"$tmp/dpkg-purge.log" 2>&1 || { cat "$tmp/dpkg-purge.log" >&2; fail "dpkg --purge"; }
! dpkg-query -W -f='${Status}' discovery 2>/dev/null | grep -qv "not-installed" || fail "still known to dpkg"
for gone in /etc/default/discoveryd /etc/default/discovery-exporter /var/lib/discovery \
  /var/lib/discovery-exporter /etc/systemd/system/multi-user.target.wants/discoveryd.service \
  /etc/systemd/system/discoveryd.service /etc/systemd/system/discovery-exporter.service \
  /var/lib/systemd/deb-systemd-helper-enabled/discoveryd.service \
  /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/discoveryd.service; do
  [ ! -e "$gone" ] && [ ! -L "$gone" ] || fail "$gone left after purge"
done
! getent passwd discovery >/dev/null || fail "user discovery left after purge"
! getent group discovery >/dev/null || fail "group discovery left after purge"

echo "package_test: PASS ($deb)" >&2
