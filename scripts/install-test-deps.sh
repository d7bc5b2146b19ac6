#!/usr/bin/env bash
# Installs the system tools the tests talk to (real radclient, real FreeRADIUS as a peer).
# Idempotent: does nothing when every tool is already on PATH.
set -euo pipefail

need=()
command -v radclient >/dev/null 2>&1 || need+=(freeradius-utils)
command -v freeradius >/dev/null 2>&1 || need+=(freeradius)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)

if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts a system FreeRADIUS on 1812 where it can; tests and the bench start their own.
if command -v service >/dev/null 2>&1; then service freeradius stop >/dev/null 2>&1 || true; fi
