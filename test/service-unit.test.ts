// deploy/radius-mfa.service passes systemd-analyze verify and has the settings docs/install.md promises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SINGLE_NODE_FLAGS } from '../bench/servers.js';

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

test('the unit gives node the flags npm start runs a single node with (a capped young generation)', () => {
  const options = UNIT.split('\n').flatMap((line) => /^Environment=NODE_OPTIONS=(.*)$/.exec(line)?.[1] ?? []);
  assert.equal(options.length, 1, 'one NODE_OPTIONS line');
  assert.ok(SINGLE_NODE_FLAGS.includes('--max-semi-space-size=4'), `npm start: ${SINGLE_NODE_FLAGS.join(' ')}`);
  assert.deepEqual(options[0]!.split(' '), SINGLE_NODE_FLAGS);
  // Node refuses a flag NODE_OPTIONS may not carry: this one it takes, and a burst of objects that survive
  // (as held requests do) grows the young generation to 2 x 4 MiB, not V8's 2 x 16 MiB.
  const burst = "const kept = []; for (let i = 0; i < 300000; i++) kept.push({ i, s: 'x' + i }); require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size";
  const youngAfterBurst = (nodeOptions: string) => {
    const r = spawnSync(process.execPath, ['-p', burst], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: nodeOptions } });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout) / 1024 / 1024;
  };
  assert.equal(youngAfterBurst(options[0]!), 8);
  assert.ok(youngAfterBurst('') > 8, "V8's default grows it further");
});
