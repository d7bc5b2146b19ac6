import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildApp } from '../src/app.js';
import type { DeviceView } from '../src/cli/device-commands.js';
import { loadConfig } from '../src/config/load.js';
import { resolveEncryptionKey } from '../src/store/secret-box.js';
import { MemoryState } from '../src/state/memory.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { runCli, type CliRun } from './helpers/cli.js';
import { until } from './helpers/until.js';
import { SimulatedPhone, httpCall } from './helpers/phone.js';
import { ScureBase32Plugin } from 'otplib';
import { codeAt } from './helpers/server.js';

const PUBLIC_URL = 'https://mfa.example.test';

/** A temp dir with a config (HTTP on a free loopback port, absolute store path) and the CLI run as a child. */
function setup(t: { after: (fn: () => void) => void }, extraConfig: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-cli-device-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  const storePath = join(dir, 'users.db');
  writeFileSync(
    config,
    [
      'listen:',
      '  auth: "127.0.0.1:0"',
      'clients:',
      '  - name: test-vpn',
      '    address: 127.0.0.1',
      '    secret: "a-long-test-shared-secret"',
      'http:',
      '  listen: "127.0.0.1:0"',
      'mobile_app:',
      '  account_name: "ACME VPN"',
      `  public_url: "${PUBLIC_URL}"`,
      'store:',
      `  path: ${JSON.stringify(storePath)}`,
      'log:',
      '  level: warn',
      ...extraConfig,
      '',
    ].join('\n'),
  );
  const cli = (args: string[]) => runCli(config, dir, args);
  return { dir, config, storePath, cli };
}

/** The real server, in this process, on the same config and store file the CLI uses. */
async function startServer(configPath: string) {
  const loaded = loadConfig(configPath);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
  const config = loaded.config;
  const store = openSqliteStore(config.store, resolveEncryptionKey(config.store).key, { cacheSize: 0 });
  const state = new MemoryState(Date.now);
  const app = buildApp(config, { store, state, logger: pino({ level: 'silent' }) });
  const bound = await app.start();
  const http = bound.find((b) => b.role === 'http')!;
  return {
    base: `http://127.0.0.1:${http.port}`,
    store,
    async close() {
      await app.close();
      await state.close();
      store.close();
    },
  };
}

function ok(r: CliRun): CliRun {
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr}`);
  return r;
}

test('device enroll --json prints a one-time code, the URL and expiry; the code activates a phone over the API once', async (t) => {
  const env = setup(t);
  ok(await env.cli(['user', 'add', 'alice']));
  const before = Date.now();
  const enrolled = JSON.parse(ok(await env.cli(['device', 'enroll', 'alice', '--json'])).stdout) as Record<string, string>;
  assert.deepEqual(Object.keys(enrolled).sort(), ['account_name', 'activation_code', 'expires', 'qr_payload', 'url']);
  assert.match(enrolled.activation_code!, /^\d{4}-\d{4}-\d{4}$/);
  assert.equal(enrolled.url, PUBLIC_URL);
  assert.equal(enrolled.account_name, 'ACME VPN');
  const expires = Date.parse(enrolled.expires!);
  assert.ok(expires >= before + 15 * 60_000 - 1000 && expires <= Date.now() + 15 * 60_000, enrolled.expires);
  assert.equal(enrolled.qr_payload, `${PUBLIC_URL}/app/?activate=${enrolled.activation_code!.replace(/-/g, '')}&account=ACME%20VPN`);

  const server = await startServer(env.config);
  t.after(() => server.close());
  const phone = await SimulatedPhone.activate(server.base, enrolled.activation_code!, { name: "Alice's phone", pushToken: 'fcm-token-alice' });
  assert.equal(phone.activation.username, 'alice');
  assert.equal(phone.activation.account_name, 'ACME VPN');
  assert.equal(phone.activation.totp, undefined, 'no TOTP secret without --totp');
  assert.equal((await phone.pending()).status, 200);

  await assert.rejects(SimulatedPhone.activate(server.base, enrolled.activation_code!), /ACTIVATION_INVALID/, 'single use');
});

test('device enroll prints the code, expiry, URL, account name and a terminal QR code', async (t) => {
  const env = setup(t);
  ok(await env.cli(['user', 'add', 'alice']));
  const r = ok(await env.cli(['device', 'enroll', 'alice']));
  assert.match(r.stdout, /^activation code for alice: \d{4}-\d{4}-\d{4}$/m);
  assert.match(r.stdout, /^expires: +\d{4}-\d\d-\d\dT[\d:.]+Z \(in 15 min; single use\)$/m);
  assert.match(r.stdout, new RegExp(`^url: +${PUBLIC_URL.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(r.stdout, /^account: +ACME VPN$/m);
  assert.match(r.stdout, /[▀▄█]/, 'a terminal QR code');
  assert.equal(r.stderr, '');

  const nobody = await env.cli(['device', 'enroll', 'nobody']);
  assert.equal(nobody.code, 1);
  assert.match(nobody.stderr, /^radius-mfa: no user nobody; add it first: radius-mfa user add nobody$/m);
  assert.equal((await env.cli(['device', 'enroll'])).code, 2);
});

test('device enroll --totp: the activation hands the app a new TOTP secret, which counts once the app confirms it', async (t) => {
  const env = setup(t);
  ok(await env.cli(['user', 'add', 'bob']));
  const { activation_code } = JSON.parse(ok(await env.cli(['device', 'enroll', 'bob', '--json', '--totp'])).stdout) as { activation_code: string };
  const server = await startServer(env.config);
  t.after(() => server.close());
  const phone = await SimulatedPhone.activate(server.base, activation_code);
  const totp = phone.activation.totp as { secret: string; digits: number; period: number; algorithm: string };
  assert.match(totp.secret, /^[A-Z2-7]{32}$/);
  assert.deepEqual({ ...totp, secret: undefined }, { secret: undefined, digits: 6, period: 30, algorithm: 'SHA1' });
  assert.equal((await server.store.getUser('bob'))?.totp ?? null, null, 'not enrolled before the app confirms');
  const secret = Buffer.from(new ScureBase32Plugin().decode(totp.secret));
  const wrong = await httpCall('POST', `${server.base}/api/v1/totp/confirm`, { code: codeAt(secret, Date.now() + 300_000) }, phone.token);
  assert.equal((wrong.body as { error: { code: string } }).error.code, 'BAD_CODE');
  const confirmed = await httpCall('POST', `${server.base}/api/v1/totp/confirm`, { code: codeAt(secret, Date.now()) }, phone.token);
  assert.deepEqual(confirmed.body, { status: 'enrolled' });
  assert.deepEqual((await server.store.getUser('bob'))?.totp?.secret, secret, 'the user is now enrolled with the secret the app holds');
  const show = JSON.parse(ok(await env.cli(['user', 'show', 'bob', '--json'])).stdout) as { totp: unknown };
  assert.deepEqual(show.totp, { algorithm: 'SHA1', digits: 6, period: 30 });
});

test('device list shows activated devices with push token yes/no/stale; device remove deregisters one', async (t) => {
  const env = setup(t);
  ok(await env.cli(['user', 'add', 'alice']));
  ok(await env.cli(['user', 'add', 'bob']));
  assert.match(ok(await env.cli(['device', 'list'])).stdout, /^no devices; activate one with: radius-mfa device enroll USER$/m);
  assert.deepEqual(JSON.parse(ok(await env.cli(['device', 'list', '--json'])).stdout), []);

  const code = async (user: string) => (JSON.parse(ok(await env.cli(['device', 'enroll', user, '--json'])).stdout) as { activation_code: string }).activation_code;
  const codes = [await code('alice'), await code('alice'), await code('bob')];
  const server = await startServer(env.config);
  t.after(() => server.close());
  const alicePush = await SimulatedPhone.activate(server.base, codes[0]!, { name: 'pixel', pushToken: 'fcm-1' });
  const alicePoll = await SimulatedPhone.activate(server.base, codes[1]!, { name: 'tablet' });
  const bob = await SimulatedPhone.activate(server.base, codes[2]!, { name: 'iphone', pushToken: 'fcm-2' });
  await server.store.devices.markPushTokenStale(bob.deviceId);
  await alicePoll.pending(); // last seen: the server writes it within a second (LAST_SEEN_FLUSH_MS)

  const listed = async () => JSON.parse(ok(await env.cli(['device', 'list', '--json'])).stdout) as DeviceView[];
  const all = await until(async () => {
    const devices = await listed();
    return devices[1]?.last_seen_at ? devices : undefined;
  }, 'the poll to be written as last seen');
  assert.deepEqual(
    all.map((d) => [d.id, d.username, d.name, d.push_token]),
    [
      [alicePush.deviceId, 'alice', 'pixel', 'yes'],
      [alicePoll.deviceId, 'alice', 'tablet', 'no'],
      [bob.deviceId, 'bob', 'iphone', 'stale'],
    ],
  );
  for (const d of all) assert.ok(Math.abs(Date.parse(d.created_at) - Date.now()) < 60_000);
  assert.equal(all[0]!.last_seen_at, null, 'not seen since activation');
  assert.ok(Math.abs(Date.parse(all[1]!.last_seen_at!) - Date.now()) < 60_000, 'seen when it polled /pending');
  assert.doesNotMatch(JSON.stringify(all), /fcm-/, 'push tokens are not printed');

  const onlyBob = JSON.parse(ok(await env.cli(['device', 'list', 'bob', '--json'])).stdout) as DeviceView[];
  assert.deepEqual(onlyBob.map((d) => d.id), [bob.deviceId]);
  const table = ok(await env.cli(['device', 'list'])).stdout.trimEnd().split('\n');
  assert.match(table[0]!, /^ID +USER +NAME +PUSH TOKEN +CREATED +LAST SEEN$/);
  assert.equal(table.length, 4);
  assert.match(table.find((l) => l.startsWith(bob.deviceId))!, / bob +iphone +stale /);
  assert.match(table.find((l) => l.startsWith(alicePush.deviceId))!, / never$/);
  const nobody = await env.cli(['device', 'list', 'nobody']);
  assert.equal(nobody.code, 1);
  assert.match(nobody.stderr, /no user nobody/);

  const removed = ok(await env.cli(['device', 'remove', alicePush.deviceId]));
  assert.match(removed.stdout, new RegExp(`^removed device ${alicePush.deviceId} \\("pixel"\\) of alice$`, 'm'));
  assert.deepEqual(
    (JSON.parse(ok(await env.cli(['device', 'list', 'alice', '--json'])).stdout) as DeviceView[]).map((d) => d.id),
    [alicePoll.deviceId],
  );
  // The removed device's token no longer opens the API; the others still do.
  const refused = await alicePush.pending();
  assert.equal(refused.status, 401);
  assert.equal((refused.body as unknown as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  assert.equal((await alicePoll.pending()).status, 200);
  assert.equal((await httpCall('GET', `${server.base}/api/v1/pending`, undefined, bob.token)).status, 200);

  const again = await env.cli(['device', 'remove', alicePush.deviceId]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^radius-mfa: no device \S+ \(radius-mfa device list shows the devices\)$/m);
});

test('device enroll warns when phones cannot reach the service URL', async (t) => {
  const env = setup(t);
  writeFileSync(env.config, `listen:\n  auth: "127.0.0.1:0"\nclients:\n  - name: v\n    address: 127.0.0.1\n    secret: "s-0123456789"\nstore:\n  path: ${JSON.stringify(env.storePath)}\n`);
  ok(await env.cli(['user', 'add', 'alice']));
  const noHttp = ok(await env.cli(['device', 'enroll', 'alice', '--json']));
  assert.match(noHttp.stderr, /no http section in the config: the Mobile App API is off/);
  assert.doesNotThrow(() => JSON.parse(noHttp.stdout), 'stdout stays pure JSON');

  writeFileSync(env.config, `listen:\n  auth: "127.0.0.1:0"\nclients:\n  - name: v\n    address: 127.0.0.1\n    secret: "s-0123456789"\nhttp:\n  listen: "127.0.0.1:8443"\nstore:\n  path: ${JSON.stringify(env.storePath)}\n`);
  const loopback = ok(await env.cli(['device', 'enroll', 'alice', '--json']));
  assert.equal((JSON.parse(loopback.stdout) as { url: string }).url, 'http://127.0.0.1:8443');
  assert.match(loopback.stderr, /mobile_app\.public_url is not set, so phones are told http:\/\/127\.0\.0\.1:8443, which only this machine reaches/);
});
