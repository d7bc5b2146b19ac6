// The engines' config for several nodes with real servers: Redis over TLS (rediss://, state.tls.ca), Redis
// found through Sentinel (state.sentinel), PostgreSQL over TLS (store.tls). Certificates from a throwaway
// PKI; a CA that did not sign the server's certificate must stop the start, never fall back to plain TCP.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import { Redis } from 'ioredis';
import { checkRedis } from '../src/cli/check-connect.js';
import { configSchema, type Config } from '../src/config/schema.js';
import { openRedisState } from '../src/state/redis.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { sql, startPostgres } from './helpers/postgres.js';
import { startRedis, startSentinel, startTlsRedis } from './helpers/redis.js';
import { makeTestPki, type TestPki } from './helpers/tls-certs.js';

let pki: TestPki;
before(() => {
  pki = makeTestPki();
});
after(() => pki.remove());

type Closer = { after: (fn: () => Promise<unknown>) => void };

function openState(t: Closer, state: Record<string, unknown>) {
  return openRedisState(configSchema.shape.state.parse({ type: 'redis', timeout: '1s', ...state }), { now: Date.now, prefix: 'engine:', sealKey: randomBytes(32) }).then((s) => {
    t.after(() => s.close());
    return s;
  });
}

test('Redis over TLS: rediss:// with state.tls.ca connects, verified, and a claimed TOTP step is a replay the second time', async (t) => {
  const redis = await startTlsRedis({ ...pki.server, ca: pki.ca });
  t.after(() => redis.close());
  const state = await openState(t, { url: redis.url, tls: { ca: pki.ca } });
  assert.equal(await state.claimTotpStep('alice', 1000, 60_000), true);
  assert.equal(await state.claimTotpStep('alice', 1000, 60_000), false);
  const socket = state.client.stream as TLSSocket;
  assert.ok(socket instanceof TLSSocket && socket.authorized, 'a TLS connection whose server certificate was verified');
});

test('Redis over TLS: a CA that did not sign the server certificate (or none: the system CAs) stops the start with the reason', async (t) => {
  const redis = await startTlsRedis({ ...pki.server, ca: pki.ca });
  t.after(() => redis.close());
  // The server sends its CA along with its certificate: a root nobody here trusts.
  const reason = `Redis at rediss://127.0.0.1:${redis.port}: self-signed certificate in certificate chain`;
  await assert.rejects(openState(t, { url: redis.url, tls: { ca: pki.otherCa } }), { message: reason });
  await assert.rejects(openState(t, { url: redis.url }), { message: reason });
  // check-config --connect says the same.
  const state = configSchema.shape.state.parse({ type: 'redis', url: redis.url, tls: { ca: pki.otherCa } });
  assert.deepEqual(await checkRedis({ state } as Config), {
    ok: false,
    cause: `cannot reach rediss://127.0.0.1:${redis.port}: self-signed certificate in certificate chain`,
    fix: 'check state.url (password, TLS), state.sentinel and the network path to Redis',
  });
});

test('Redis through Sentinel: the state finds the master by name (not the URL host) and claims TOTP steps on it', async (t) => {
  const master = await startRedis();
  t.after(() => master.close());
  const sentinel = await startSentinel('radius-mfa', master.port);
  t.after(() => sentinel.close());
  // Port 1 in the URL: with sentinel only its password, database and scheme count.
  const state = await openState(t, { url: 'redis://127.0.0.1:1/0', sentinel: { name: 'radius-mfa', nodes: [`127.0.0.1:${sentinel.port}`] } });
  assert.equal(await state.claimTotpStep('alice', 1000, 60_000), true);
  assert.equal(await state.claimTotpStep('alice', 1000, 60_000), false);
  const raw = new Redis(master.port, '127.0.0.1');
  t.after(() => raw.quit());
  assert.equal(await raw.get('engine:step:alice'), '1000');
});

test('PostgreSQL over TLS: store.tls.ca opens the store with every connection on TLS; a user added is read back', async (t) => {
  const server = await startPostgres({ ssl: pki.server });
  t.after(() => server.close());
  const url = await server.createDatabase();
  const config = { type: 'postgres' as const, path: 'unused', url, pool: 2, tls: { ca: pki.ca } };

  const store = await openPostgresStore(config, randomBytes(32));
  t.after(() => store.close());
  await store.addUser({ username: 'alice', method: 'totp' });
  assert.equal((await store.getUser('alice'))?.method, 'totp');
  assert.deepEqual((await store.pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows, [{ ssl: true }]);
  // The pool's connections and the user cache's LISTEN connection alike.
  const ours = await sql<{ application_name: string; ssl: boolean }>(
    server.url,
    "SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'radius-mfa%' ORDER BY 1",
  );
  assert.ok(ours.some((c) => c.application_name === 'radius-mfa-listen'), JSON.stringify(ours));
  assert.deepEqual(ours.filter((c) => !c.ssl), []);

  // The wrong CA: refused at open, with the reason.
  await assert.rejects(openPostgresStore({ ...config, tls: { ca: pki.otherCa } }, randomBytes(32)), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', message: 'unable to verify the first certificate' });
});
