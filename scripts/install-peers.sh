#!/usr/bin/env bash
# Installs the reference peers the interop tests run against (Debian packages). Needs root; does nothing
# when every tool is already there. The libtorrent wheel comes from PyPI with the project's `test` extra.
set -euo pipefail
need=()
command -v transmission-daemon >/dev/null || need+=(transmission-daemon)
command -v transmission-show >/dev/null || need+=(transmission-cli)
command -v aria2c >/dev/null || need+=(aria2)
command -v opentracker >/dev/null || need+=(opentracker)
command -v mktorrent >/dev/null || need+=(mktorrent)
command -v redis-server >/dev/null || need+=(redis-server)
command -v ip >/dev/null || need+=(iproute2)
command -v openssl >/dev/null || need+=(openssl)
command -v mount >/dev/null || need+=(mount)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-peers: not root; missing ${need[*]} (interop tests will skip locally)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# the packaged services must not run on their own: tests start their own instances
for svc in transmission-daemon opentracker redis-server; do
  (service "$svc" stop || true) >/dev/null 2>&1
done
