// deploy/radius-mfa.service passes systemd-analyze verify and has the settings docs/install.md promises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const UNIT = readFileSync(new URL('../deploy/radius-mfa.service', import.meta.url), 'utf8');

test('the service unit passes systemd-analyze verify', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // verify checks that ExecStart's program exists: point it at a stand-in in the temp dir.
  const bin = join(dir, 'radius-mfa');
  writeFileSync(bin, '#!/bin/sh\nexit 0\n');
  chmodSync(bin, 0o755);
  const unit = join(dir, 'radius-mfa.service');
  writeFileSync(unit, UNIT.replaceAll('/usr/local/bin/radius-mfa', bin));
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
  assert.ok(r.error === undefined, `systemd-analyze did not run: ${r.error?.message} (scripts/install-test-deps.sh installs the systemd package)`);
  // Other units on the machine may draw warnings of their own; ours must draw none.
  const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('radius-mfa'));
  assert.deepEqual(ours, []);
});

test('the service unit runs as its own user with a state, config and cache directory, hardened, reloading on SIGHUP', () => {
  const settings = new Map<string, string[]>();
  for (const line of UNIT.split('\n')) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
  }
  const one = (k: string) => settings.get(k)?.[0];
  assert.equal(one('Type'), 'simple', 'no sd_notify: simple, not notify');
  assert.equal(one('User'), 'radius-mfa');
  assert.equal(one('StateDirectory'), 'radius-mfa');
  assert.equal(one('ConfigurationDirectory'), 'radius-mfa');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('PrivateTmp'), 'yes');
  assert.equal(one('CacheDirectory'), 'radius-mfa');
  assert.ok(settings.get('Environment')?.includes('NODE_COMPILE_CACHE=/var/cache/radius-mfa'), 'the compile cache survives a restart');
  assert.equal(one('RestrictAddressFamilies'), 'AF_INET AF_INET6 AF_UNIX');
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.match(one('ExecStart') ?? '', /radius-mfa --config \/etc\/radius-mfa\/config\.yaml serve$/);
});
