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
import { until } from './helpers/until.js';

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

test('Redis through Sentinel: after a failover the state is on the new master within seconds, and a step claimed before is still a replay', async (t) => {
  const master = await startRedis();
  t.after(() => master.close());
  const replica = await startRedis({ args: () => ['--replicaof', '127.0.0.1', String(master.port)] });
  t.after(() => replica.close());
  const onReplica = new Redis(replica.port, '127.0.0.1');
  t.after(() => onReplica.quit());
  await until(async () => /master_link_status:up/.test(await onReplica.info('replication')) || undefined, 'the replica in sync');
  // Started once the replica is in sync: the sentinel's first INFO of the master lists it (else up to 10 s later).
  const sentinel = await startSentinel('radius-mfa', master.port);
  t.after(() => sentinel.close());
  const state = await openState(t, { url: 'redis://127.0.0.1:1/0', sentinel: { name: 'radius-mfa', nodes: [`127.0.0.1:${sentinel.port}`] } });
  assert.equal(await state.claimTotpStep('alice', 1000, 60_000), true);
  await until(async () => (await onReplica.get('engine:step:alice')) === '1000' || undefined, 'the claim replicated');

  // The end of the failover is +switch-master (GET-MASTER-ADDR-BY-NAME names the replica a little earlier).
  const events = new Redis(sentinel.port, '127.0.0.1');
  t.after(() => events.quit());
  let switchMessage: string | undefined;
  events.on('message', (_channel, message: string) => (switchMessage = message));
  await events.subscribe('+switch-master');
  const admin = new Redis(sentinel.port, '127.0.0.1');
  t.after(() => admin.quit());
  // NOGOODSLAVE until the sentinel has had the replica's own INFO.
  await until(() => admin.call('SENTINEL', 'FAILOVER', 'radius-mfa').then(() => true, () => undefined), 'the sentinel to start a failover');
  assert.equal(await until(() => switchMessage, '+switch-master'), `radius-mfa 127.0.0.1 ${master.port} 127.0.0.1 ${replica.port}`);
  const switched = Date.now();
  // The old master stays writable until the sentinel demotes it (8 s or more later): claims made there would be lost.
  await until(async () => (await state.client.info('server').catch(() => '')).includes(`tcp_port:${replica.port}\r\n`) || undefined, 'the state on the new master');
  assert.ok(Date.now() - switched < 5000, `on the new master ${Date.now() - switched} ms after the switch`);
  // Commands fail fast while the connection moves (the new master drops its clients once more just after the
  // switch): a claim is retried, as a NAS retries its request.
  const claim = (step: number) => until(() => state.claimTotpStep('alice', step, 60_000).catch(() => undefined), `a claim of step ${step} after the failover`);
  assert.equal(await claim(1000), false, 'the claim made before the failover is still a replay');
  assert.equal(await claim(1001), true);
  assert.equal(await onReplica.get('engine:step:alice'), '1001');
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
