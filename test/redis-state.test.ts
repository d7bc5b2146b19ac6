// What only the Redis state does (the interface is in state-contract.test.ts): secrets sealed inside
// Redis, the eviction-policy warning, failing fast while Redis is down and coming back without a restart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { configSchema } from '../src/config/schema.js';
import { loadConfig } from '../src/config/load.js';
import { openRedisState, type RedisState } from '../src/state/redis.js';
import { RedisPendingPushes } from '../src/state/redis-pushes.js';
import { startRedis, type RedisInstance } from './helpers/redis.js';

let server: RedisInstance;
before(async () => {
  server = await startRedis();
});
after(() => server.close());

const stateConfig = (extra: Record<string, unknown> = {}) => configSchema.shape.state.parse({ type: 'redis', url: server.url, ...extra });

async function open(t: { after: (fn: () => Promise<void>) => void }, prefix: string, warn?: (m: string) => void): Promise<RedisState> {
  const s = await openRedisState(stateConfig({ timeout: '1s' }), { now: Date.now, prefix, sealKey: randomBytes(32), warn });
  t.after(() => s.close());
  return s;
}

test('unconfirmed TOTP secrets and challenge records are sealed inside Redis: a dump shows neither', async (t) => {
  const state = await open(t, 'sealed:');
  const secret = Buffer.from('a-very-recognisable-totp-secret!');
  await state.putEnrollment('dev', { secret, algorithm: 'SHA1', digits: 6, period: 30 }, 60_000);
  await state.putChallenge('st', { username: 'alice', clientName: 'nas', method: 'challenge', firstFactor: { reply: 'cafe-reply-attrs' }, expires: Date.now() + 60_000 });
  const raw = new Redis(server.port, '127.0.0.1');
  t.after(() => raw.quit().then(() => {}));
  const keys = (await raw.keys('sealed:*')).sort();
  assert.deepEqual(keys, ['sealed:challenge:st', 'sealed:enroll:dev']);
  const dump = (await Promise.all(keys.map((k) => raw.get(k)))).join('\n');
  for (const needle of [secret.toString('utf8'), secret.toString('hex'), secret.toString('base64'), 'alice', 'cafe-reply-attrs']) {
    assert.equal(dump.includes(needle), false, `${needle} is readable in Redis`);
  }
  // Moved to another key (or written by a deployment with another key): read as absent, never as garbage.
  await raw.copy('sealed:enroll:dev', 'sealed:enroll:other');
  assert.equal(await state.getEnrollment('other'), undefined);
  assert.equal((await state.getEnrollment('dev'))?.secret.toString(), secret.toString());
});

test('an eviction policy that could drop security counts is warned about at start', async (t) => {
  const admin = new Redis(server.port, '127.0.0.1');
  t.after(async () => {
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.quit();
  });
  const quiet: string[] = [];
  await open(t, 'w1:', (m) => quiet.push(m));
  assert.deepEqual(quiet, []);
  await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
  const warned: string[] = [];
  await open(t, 'w2:', (m) => warned.push(m));
  assert.equal(warned.length, 1);
  assert.match(warned[0]!, /maxmemory-policy is allkeys-lru.*noeviction/);
});

test('a Redis that cannot be reached at start is an error within the timeout', async () => {
  const started = Date.now();
  await assert.rejects(openRedisState(configSchema.shape.state.parse({ type: 'redis', url: 'redis://127.0.0.1:1', timeout: '500ms' }), { now: Date.now, prefix: 'x:', sealKey: randomBytes(32) }));
  assert.ok(Date.now() - started < 5000);
});

test('while Redis is down every command fails at once; when it is back the same client works again', async (t) => {
  const state = await open(t, 'outage:');
  assert.equal(await state.increment('fail:alice', 60_000), 1);
  await server.stop();
  const started = Date.now();
  await assert.rejects(state.increment('fail:alice', 60_000));
  await assert.rejects(state.claimTotpStep('alice', 1, 60_000));
  assert.ok(Date.now() - started < 3000, 'failed fast, not queued until Redis returns');
  await server.start();
  const deadline = Date.now() + 15_000;
  let n: number | undefined;
  for (let i = 0; i < 1000 && n === undefined && Date.now() < deadline; i++) {
    n = await state.increment('fail:alice', 60_000).catch(() => undefined);
    if (n === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  // Without persistence the restarted Redis starts empty (docs/ha.md: run it with appendonly yes).
  assert.equal(n, 1, 'reconnected by itself');
});

test('a store other nodes may share with state in memory is warned about by the config check', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-ha-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.yaml');
  const base = `listen: { auth: "127.0.0.1:1812" }
clients: [{ name: nas, address: 127.0.0.1, secret: "0123456789abcdef0123", require_message_authenticator: true }]
store: { type: postgres, url: "postgres://db.example.com/radius_mfa", encryption_key: "${'ab'.repeat(32)}" }
`;
  writeFileSync(path, base);
  const memory = loadConfig(path);
  assert.ok(memory.ok);
  assert.equal(memory.warnings.length, 1);
  assert.match(memory.warnings[0]!, /state\.type.*memory.*replayed at another.*state\.type redis/);
  writeFileSync(path, `${base}state: { type: redis, url: "redis://127.0.0.1:6379" }\n`);
  const shared = loadConfig(path);
  assert.ok(shared.ok);
  assert.deepEqual(shared.warnings, []);
});

test('the commands of requests handled in one turn of the event loop reach Redis in one write, not one each', async (t) => {
  const state = await open(t, 'batch:');
  const admin = new Redis(server.port, '127.0.0.1');
  t.after(() => admin.quit().then(() => {}));
  const reads = async () => Number(/total_reads_processed:(\d+)/.exec(await admin.info('stats'))![1]);
  const before = await reads();
  // 200 requests of one received batch, each at its first await and then its next: two turns' worth.
  const counts = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
    await state.increment(`user:u${i}`, 60_000);
    return state.claimTotpStep(`u${i}`, 1000, 60_000);
  }));
  assert.deepEqual(new Set(counts), new Set([true]));
  // 400 commands; the admin connection's own INFO commands are 2 more reads.
  const used = (await reads()) - before - 2;
  assert.ok(used <= 8, `${used} reads at Redis for 400 commands`);
});

test("the counts and claims of one turn are one script call at Redis, and an op that fails there fails alone", async (t) => {
  const state = await open(t, 'ops:');
  const admin = new Redis(server.port, '127.0.0.1');
  t.after(() => admin.quit().then(() => {}));
  const scriptCalls = async () => {
    const stats = await admin.info('commandstats');
    return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  };
  await state.increment('warm', 1000); // the script is loaded (EVALSHA, then EVAL once) before counting
  const before = await scriptCalls();
  const claims = await Promise.all(Array.from({ length: 200 }, (_, i) => state.claimTotpStep(`u${i}`, 1000, 60_000)));
  assert.deepEqual(new Set(claims), new Set([true]));
  assert.equal((await scriptCalls()) - before, 1, '200 claims of one turn: one script call');
  // The same turn again: every claim is now a replay, each one's own answer.
  assert.deepEqual(new Set(await Promise.all(Array.from({ length: 200 }, (_, i) => state.claimTotpStep(`u${i}`, 1000, 60_000)))), new Set([false]));

  // A key that is no count (written by something else): its INCR fails; the claim beside it does not.
  await admin.set('ops:count:broken', 'not a number');
  const [count, claim] = await Promise.allSettled([state.increment('broken', 60_000), state.claimTotpStep('v', 1000, 60_000)]);
  assert.equal(count.status, 'rejected');
  assert.match(String((count as PromiseRejectedResult).reason), /not an integer/);
  assert.deepEqual(claim, { status: 'fulfilled', value: true });
});

test('a subscriber cut off without a word (an idle timeout in between) is noticed by its heartbeat: the decision still arrives', async (t) => {
  // A TCP relay to Redis that can go silent: its connections stay open and pass nothing, as behind a
  // firewall that dropped the flow. Connections made after that pass again.
  const silenced = new Set<Socket>();
  const open = new Set<Socket>();
  const relay = createServer((client) => {
    open.add(client);
    const upstream = connect(server.port, '127.0.0.1');
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      from.on('data', (chunk) => void (silenced.has(client) || to.write(chunk)));
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    }
    client.on('close', () => (silenced.delete(client), open.delete(client)));
    relay.once('silence', () => silenced.add(client));
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const options = { now: Date.now, prefix: 'beat:', sealKey: randomBytes(32), heartbeatMs: 100 };
  const clients: Redis[] = [];
  const client = (port: number) => {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };
  const direct = () => client(server.port);
  const [here, there] = [new RedisPendingPushes(direct(), client((relay.address() as AddressInfo).port), options), new RedisPendingPushes(direct(), direct(), options)];
  t.after(async () => {
    for (const socket of open) socket.destroy();
    await Promise.all([here.close(), there.close()]);
    // The command connections are the caller's (RedisState's, in the server): closed here, or they would keep this file's process alive.
    for (const c of clients) c.disconnect();
    await new Promise<void>((r) => relay.close(() => r()));
  });
  await Promise.all([here.start(), there.start()]);

  const push = await here.create({ username: 'ann', clientName: 'vpn', nasIp: undefined, nasIdentifier: undefined, callingStation: undefined, pinRequired: false, number: undefined }, 60_000);
  const outcome = here.wait(push.id, 5000);
  relay.emit('silence');
  assert.equal(await there.decide(push.id, { kind: 'approve', deviceId: 'phone' }), true);
  assert.deepEqual(await outcome, { kind: 'approve', deviceId: 'phone' });
});
