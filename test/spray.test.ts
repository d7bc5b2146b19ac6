// Under attack, bounded: a password spray of signed requests at several times the first factor's capacity
// (random and known usernames, from many addresses) while a real user logs in once a second as a NAS
// would (radclient: 5 s timeout, 3 tries). The real user gets in every time; memory stays bounded; after
// the spray the server answers at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hashPassword } from '../src/auth/password-hash.js';
import { Attr } from '../src/radius/packet.js';
import { runCli } from './helpers/cli.js';
import { radclient } from './helpers/radclient.js';
import { startServe } from './helpers/serve-process.js';
import { startTestServer } from './helpers/server.js';
import { buildAccessRequest, UdpClient } from './helpers/udp.js';

const HOME = '203.0.113.7';
const SPRAY_PER_SECOND = 300;
const SPRAY_SECONDS = 5;
const KNOWN_USERS = 200;
/** What the server may add while sprayed: the waiting checks (1,024 at most), the reply cache, counters. */
const MEMORY_BOUND_MIB = 200;

test(`a spray of ${SPRAY_PER_SECOND} wrong passwords a second for ${SPRAY_SECONDS} s does not keep a real user out`, { timeout: 120_000 }, async (t) => {
  const s = await startTestServer({ config: { users: { rita: { method: 'none' } }, metrics: { listen: '127.0.0.1:0' } } });
  t.after(() => s.close());
  const hash = await hashPassword('not-this-one');
  await s.store.addUsers([{ username: 'rita', passwordHash: await hashPassword('rita-pw') }, ...Array.from({ length: KNOWN_USERS }, (_, i) => ({ username: `known${i}`, passwordHash: hash }))]);
  const rita = () => radclient({ 'User-Name': 'rita', 'User-Password': 'rita-pw', 'Calling-Station-Id': HOME }, { port: s.authPort, secret: s.secret, timeout: 5, tries: 3 });
  assert.equal((await rita()).code, 'Access-Accept', 'rita signs in from home before the spray');

  const udp = await UdpClient.open();
  t.after(() => udp.close());
  const rssBefore = process.memoryUsage().rss;
  let sent = 0;
  const spray = (async () => {
    const started = performance.now();
    for (let second = 0; second < SPRAY_SECONDS; second++) {
      for (let i = 0; i < SPRAY_PER_SECOND; i++) {
        const name = i % 2 ? `known${(sent * 7) % KNOWN_USERS}` : `nobody-${randomBytes(4).toString('hex')}`;
        const from = `198.51.${(sent >> 8) & 255}.${sent & 255}`;
        await udp.send(buildAccessRequest({ secret: s.secret, identifier: sent & 255, userName: name, password: `guess-${sent}`, attributes: [[Attr.CallingStationId, from]] }), s.authPort);
        sent++;
      }
      const next = started + (second + 1) * 1000;
      if (next > performance.now()) await sleep(next - performance.now());
    }
  })();
  const ritaDuring: string[] = [];
  for (let i = 0; i < SPRAY_SECONDS; i++) {
    const started = performance.now();
    ritaDuring.push((await rita()).code);
    const left = 1000 - (performance.now() - started);
    if (left > 0) await sleep(left);
  }
  await spray;
  const grown = (process.memoryUsage().rss - rssBefore) / 2 ** 20;

  assert.deepEqual(ritaDuring, Array(SPRAY_SECONDS).fill('Access-Accept'), 'rita got in every time');
  assert.ok(grown < MEMORY_BOUND_MIB, `RSS grew ${grown.toFixed(0)} MiB (bound ${MEMORY_BOUND_MIB})`);
  const after = performance.now();
  assert.equal((await rita()).code, 'Access-Accept');
  assert.ok(performance.now() - after < 2000, 'answered at once after the spray');
  const metrics = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
  const checks = Number(/^radius_first_factor_checks_total (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(checks < sent / 2, `unknown users and locked ones cost no hash: ${checks} checks for ${sent} requests`);
});

test('rate limits: a client past client_per_second and a stranger address past source_per_minute are dropped and counted', async (t) => {
  const s = await startTestServer({ config: { rate_limits: { client_per_second: 6, source_per_minute: 3 }, users: { rita: { method: 'none' } }, metrics: { listen: '127.0.0.1:0' } } });
  t.after(() => s.close());
  await s.store.addUser({ username: 'rita', passwordHash: await hashPassword('rita-pw') });
  const udp = await UdpClient.open();
  t.after(() => udp.close());
  const send = (id: number, from: string) =>
    udp.send(buildAccessRequest({ secret: s.secret, identifier: id, userName: 'rita', password: 'rita-pw', attributes: [[Attr.CallingStationId, from]] }), s.authPort);
  // Five from one stranger address: three pass its limit (all five count for the client). Then five more
  // from five addresses: one more fits in the client's 6 per second.
  for (let i = 0; i < 5; i++) await send(i, '198.51.100.1');
  for (let i = 5; i < 10; i++) await send(i, `198.51.100.${i}`);
  const answered = [];
  for (let r = await udp.next(3000); r; r = await udp.next(500)) answered.push(r.bytes[1]);
  assert.deepEqual(answered.sort((a, b) => a! - b!), [0, 1, 2, 5]);
  const metrics = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
  assert.match(metrics, /^radius_datagrams_dropped_total\{reason="rate_limited"\} 6$/m);
});

test('SIGTERM under load: every request answered before the stop has its audit line, and the process exits 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-sigterm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = 'a-long-enough-secret-2';
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `listen:\n  auth: "127.0.0.1:0"\nclients:\n  - name: nas\n    address: 127.0.0.1\n    secret: "${secret}"\nmfa:\n  reject_delay: 0\nstore:\n  path: "${join(dir, 'users.db')}"\n`);
  assert.equal((await runCli(config, dir, ['user', 'add', 'kay', '--password-stdin'], 'kay-pw\n')).code, 0);
  const server = await startServe(config);
  const udp = await UdpClient.open();
  t.after(() => udp.close());
  // Three real checks first: then unknown users are answered after a timer as long as one, so many are in flight at the stop.
  for (let i = 0; i < 3; i++) assert.ok(await udp.request(buildAccessRequest({ secret, identifier: 250 + i, userName: 'kay', password: `guess${i}` }), server.authPort, '127.0.0.1', 5000));
  udp.takeReceived();
  for (let i = 0; i < 400; i++) await udp.send(buildAccessRequest({ secret, identifier: i & 255, userName: `nobody${i}`, password: 'x' }), server.authPort);
  for (let got = 0; got < 50; got++) assert.ok(await udp.next(5000), `reply ${got}`);
  const code = await server.stop();
  const answered = 3 + udp.takeReceived().length;
  const decisions = server.lines.filter((l) => l.msg === 'decision').length;
  assert.equal(code, 0, server.output());
  assert.ok(decisions >= answered, `${decisions} audit lines for ${answered} replies`);
});
