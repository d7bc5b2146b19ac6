// Redis and PostgreSQL stopped and started under a running server (real engines, real radclient): requests
// that need the missing engine are rejected with their own reason, never accepted, never left unanswered;
// one log line per outage, a gauge, /readyz says what is down, and the same process recovers by itself.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openRedisState } from '../src/state/redis.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { startPostgres, type PostgresInstance } from './helpers/postgres.js';
import { radclient } from './helpers/radclient.js';
import { startRedis, type RedisInstance } from './helpers/redis.js';
import { enrollTotp, startTestServer, wrongCodeAt, type EnrolledUser, type TestServer } from './helpers/server.js';

let pg: PostgresInstance;
let redis: RedisInstance;
let server: TestServer;
let alice: EnrolledUser;

before(async () => {
  [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  const url = await pg.createDatabase();
  const key = randomBytes(32);
  server = await startTestServer({
    config: {
      metrics: { listen: '127.0.0.1:0' },
      store: { type: 'postgres', url, encryption_key: key.toString('hex') },
      state: { type: 'redis', url: redis.url, timeout: '1s' },
    },
    openStore: (c, now) => openPostgresStore(c.store, key, { now, connectTimeoutMs: 1000 }),
    openState: (c, now) => openRedisState(c.state, { now, prefix: c.state.prefix, sealKey: key }),
  });
  alice = await enrollTotp(server.store, 'alice', { password: 'alice-pw', method: 'totp' });
});
after(async () => {
  await server?.close();
  await Promise.all([pg?.close(), redis?.close()]);
});

/** One login with a fresh code (a new time step each time, so the replay guard never interferes). */
async function login(): Promise<string> {
  server.clock.advance(30_000);
  const r = await radclient({ 'User-Name': 'alice', 'User-Password': `alice-pw${alice.codeAt(server.clock.now())}` }, { port: server.authPort, secret: server.secret, timeout: 5 });
  return r.code;
}

async function http(path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${server.metricsPort}${path}`);
  return { status: r.status, body: await r.text() };
}

/** Logins until one is accepted (the engine is back and reconnected); bounded. */
async function untilAccepted(): Promise<number> {
  for (let i = 1; i <= 100; i++) {
    if ((await login()) === 'Access-Accept') return i;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('never accepted again after the engine came back');
}

const outageLines = (kind: string) => server.logs.filter((r) => typeof r.msg === 'string' && r.msg.startsWith(`${kind} (`) && r.msg.includes(') unavailable:'));
const recoveryLines = (kind: string) => server.logs.filter((r) => typeof r.msg === 'string' && r.msg === `${kind} (${r.engine}) answers again`);

test('Redis stopped during traffic: state_unavailable rejects, one log line, a gauge, /readyz; back without a restart', async () => {
  assert.equal(await login(), 'Access-Accept');
  assert.equal((await http('/readyz')).status, 200);

  await redis.stop();
  // Traffic while it is down, several at once: every one answered, none accepted.
  const codes = await Promise.all(Array.from({ length: 6 }, () => login()));
  assert.deepEqual(new Set(codes), new Set(['Access-Reject']));
  const reasons = server.logs.audits('alice').slice(-6).map((a) => a.reason);
  assert.deepEqual(new Set(reasons), new Set(['state_unavailable']));
  assert.equal(outageLines('redis').length, 1, 'one line for the outage, not one per request');
  const ready = await http('/readyz');
  assert.equal(ready.status, 503);
  assert.equal(JSON.parse(ready.body).checks.state.ok, false);
  assert.equal(JSON.parse(ready.body).checks.state.type, 'redis');
  const metrics = (await http('/metrics')).body;
  assert.match(metrics, /radius_engine_up\{engine="state",kind="redis"\} 0/);
  assert.match(metrics, /radius_decisions_total\{[^}]*reason="state_unavailable"[^}]*\} [1-9]/);

  await redis.start();
  await untilAccepted();
  assert.equal(recoveryLines('redis').length, 1);
  assert.equal(outageLines('redis').length, 1);
  assert.equal((await http('/readyz')).status, 200);
  assert.match((await http('/metrics')).body, /radius_engine_up\{engine="state",kind="redis"\} 1/);
});

test('PostgreSQL stopped during traffic: store_unavailable rejects, one log line, /readyz; back without a restart', async () => {
  assert.equal(await login(), 'Access-Accept');
  await pg.stop();
  const codes = await Promise.all(Array.from({ length: 4 }, () => login()));
  assert.deepEqual(new Set(codes), new Set(['Access-Reject']));
  const reasons = server.logs.audits('alice').slice(-4).map((a) => a.reason);
  assert.deepEqual(new Set(reasons), new Set(['store_unavailable']));
  assert.equal(outageLines('postgres').length, 1);
  const ready = await http('/readyz');
  assert.equal(ready.status, 503);
  assert.equal(JSON.parse(ready.body).checks.store.ok, false);
  assert.match((await http('/metrics')).body, /radius_engine_up\{engine="store",kind="postgres"\} 0/);

  await pg.start();
  await untilAccepted();
  assert.equal(recoveryLines('postgres').length, 1);
  assert.equal((await http('/readyz')).status, 200);
  assert.equal(server.logs.filter((r) => r.msg === 'bug: access handler failed; no reply sent').length, 0, 'every request got a reply');
});

test('the store lost while a failure locks the user: store_unavailable, the attempt slot ended once, a reply sent', async () => {
  const key = randomBytes(32);
  const url = await pg.createDatabase();
  const lost = () => Promise.reject(new Error('Connection terminated unexpectedly'));
  const s = await startTestServer({
    config: { store: { type: 'postgres', url, encryption_key: key.toString('hex') }, mfa: { lockout: { max_failures: 1 } } },
    // The connection goes exactly at the lock's write, after the slot was ended as a failure.
    openStore: async (c, now) => Object.assign(Object.create(await openPostgresStore(c.store, key, { now })), { lockUser: lost }),
  });
  try {
    const zed = await enrollTotp(s.store, 'zed', { password: 'zed-pw', method: 'totp' });
    const r = await radclient({ 'User-Name': 'zed', 'User-Password': `zed-pw${wrongCodeAt(zed, s.clock.now())}` }, { port: s.authPort, secret: s.secret, timeout: 3 });
    assert.equal(r.code, 'Access-Reject');
    assert.equal(s.logs.audits('zed').at(-1)?.reason, 'store_unavailable');
    assert.deepEqual(s.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('bug:')), []);
  } finally {
    await s.close();
  }
});
