// Two nodes on this machine sharing one PostgreSQL and one Redis (real engines, started here), the real
// radclient as the VPN and the simulated phone, for everything a push does across nodes: the phone's
// answer reaching the other node, a NAS failing over mid-push, kill -9 of the node that sent the push,
// number matching answered at the other node, a fraud report, portal sessions behind a load balancer,
// and Redis going away with a push held. (Two-node tests without a push are in their own file.)
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { configSchema } from '../src/config/schema.js';
import { createActivation } from '../src/mfa/activation.js';
import type { PushMessage, PushSender, PushSendResult } from '../src/mfa/push-sender.js';
import { openRedisState } from '../src/state/redis.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { httpCall, sign, SimulatedPhone, type PendingView } from './helpers/phone.js';
import { PortalClient } from './helpers/portal-client.js';
import { startPostgres, type PostgresInstance } from './helpers/postgres.js';
import { radclient, type RadclientResult } from './helpers/radclient.js';
import { startRedis, type RedisInstance } from './helpers/redis.js';
import { startServe } from './helpers/serve-process.js';
import { enrollTotp, mergeConfig, startTestServer, type ConfigInput, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

let pg: PostgresInstance;
let redis: RedisInstance;
const key = randomBytes(32);
const SECRET = `two-node-secret-${randomBytes(6).toString('hex')}`;
let clusters = 0;

before(async () => {
  [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
});
after(async () => {
  await Promise.all([pg?.close(), redis?.close()]);
});

/** Records every push handed over (one per attempt, across both nodes, is the point). */
class RecordingSender implements PushSender {
  readonly sent: PushMessage[] = [];
  async send(_token: string, message: PushMessage): Promise<PushSendResult> {
    this.sent.push(message);
    return { ok: true };
  }
}

interface Cluster {
  a: TestServer;
  b: TestServer;
  /** The shared settings, for a node started as a `serve` process. */
  db: string;
  prefix: string;
  sent: () => PushMessage[];
}

/** Two in-process nodes on a fresh database and Redis prefix, the same NAS client and key on both. */
async function cluster(t: TestContext, extra: ConfigInput = {}): Promise<Cluster> {
  const db = await pg.createDatabase();
  const prefix = `xnode${++clusters}:`;
  const senders = [new RecordingSender(), new RecordingSender()];
  const node = (sender: RecordingSender) =>
    startTestServer({
      secret: SECRET,
      pushSender: sender,
      config: mergeConfig(
        {
          http: { listen: '127.0.0.1:0' },
          metrics: { listen: '127.0.0.1:0' },
          store: { type: 'postgres', url: db, encryption_key: key.toString('hex') },
          state: { type: 'redis', url: redis.url, prefix, timeout: '1s' },
          mfa: { default_method: 'push', push: { timeout: '20s' } },
        },
        extra,
      ),
      openStore: (c, now) => openPostgresStore(c.store, key, { now, connectTimeoutMs: 1000 }),
      openState: (c, now) => openRedisState(c.state, { now, prefix: c.state.prefix, sealKey: key }),
    });
  const a = await node(senders[0]!);
  t.after(() => a.close());
  const b = await node(senders[1]!);
  t.after(() => b.close());
  return { a, b, db, prefix, sent: () => senders.flatMap((s) => s.sent) };
}

const base = (s: TestServer) => `http://127.0.0.1:${s.httpPort}`;

/** A user with a password and a phone activated through `at` (the phone then talks to either node). */
async function userWithPhone(c: Cluster, username: string, at: TestServer = c.a, opts: { pin?: string } = {}): Promise<SimulatedPhone> {
  await enrollTotp(at.store, username, { password: `pw-${username}` });
  const activation = await createActivation(at.store, at.config, username, at.clock.now());
  return SimulatedPhone.activate(base(at), activation.activation_code, { pushToken: `fcm-${username}`, ...opts });
}

/** The phone's calls through another node (behind a load balancer a phone reaches whichever node answers). */
const via = (node: TestServer, phone: SimulatedPhone) => ({
  pending: () => httpCall<PendingView[]>('GET', `${base(node)}/api/v1/pending`, undefined, phone.token),
  async answer(id: string, decision: string, opts: { pin?: string } = {}) {
    const signature = await sign(phone.keys, `${id}.${decision}`);
    return httpCall<Record<string, unknown>>('POST', `${base(node)}/api/v1/requests/${encodeURIComponent(id)}/answer`, { decision, signature, ...opts }, phone.token);
  },
  async waitForPending(): Promise<PendingView> {
    return until(async () => (await this.pending()).body[0], `a pending request listed by ${node.httpPort}`);
  },
});

/** One attempt as a NAS sends it: the same User-Name, password, NAS and Calling-Station-Id at whichever node. */
const login = (port: number, username: string, password = `pw-${username}`, extra: Record<string, string> = {}, timeout = 15): Promise<RadclientResult> =>
  radclient({ 'User-Name': username, 'User-Password': password, 'NAS-Identifier': 'vpn-gw', 'Calling-Station-Id': '203.0.113.7', ...extra }, { port, secret: SECRET, timeout });

const decisions = (s: TestServer, user: string) => s.logs.audits(user).filter((r) => r.msg === 'decision');

test('a push started at A is listed and approved through B: A answers Access-Accept at once', async (t) => {
  const c = await cluster(t);
  const phone = await userWithPhone(c, 'alice');
  const held = login(c.a.authPort, 'alice');
  const request = await via(c.b, phone).waitForPending();
  assert.equal(request.client, 'test-nas');
  assert.equal(request.calling_station, '203.0.113.7');
  assert.deepEqual((await via(c.a, phone).pending()).body.map((p) => p.id), [request.id], 'both nodes list the same one push');
  const answered = await via(c.b, phone).answer(request.id, 'approve');
  assert.deepEqual(answered.body, { status: 'approved' });
  const reply = await held;
  assert.equal(reply.code, 'Access-Accept');
  assert.deepEqual(decisions(c.a, 'alice').map((d) => d.reason), ['push_approved']);
  assert.equal(c.sent().length, 1);
  // B's answer reached A by pub/sub: the decision line at A follows B's answer within milliseconds.
  const answerAt = Date.parse(String(c.b.logs.filter({ event: 'push_answer' })[0]?.time));
  const decidedAt = Date.parse(String(decisions(c.a, 'alice')[0]?.time));
  assert.ok(decidedAt - answerAt < 200, `A answered ${decidedAt - answerAt} ms after B took the approval`);
  const late = await via(c.a, phone).answer(request.id, 'deny');
  assert.equal(late.status, 409, 'answered once, on any node');
  assert.equal((late.body.error as { code: string }).code, 'ALREADY_ANSWERED');
  assert.deepEqual((await via(c.a, phone).pending()).body, []);
});

test('NAS failover mid-push: the same attempt at B joins the push at A (one push), and both requests get the Accept', async (t) => {
  const c = await cluster(t);
  const phone = await userWithPhone(c, 'alice');
  const atA = login(c.a.authPort, 'alice');
  const request = await via(c.a, phone).waitForPending();
  // The NAS gave up on A (its primary) and sends the same attempt to B (its secondary).
  const atB = login(c.b.authPort, 'alice');
  await until(() => (c.b.logs.filter((r) => r.msg === 'decision').length === 0 && c.b.app.pending.size === 1 ? true : undefined), 'B holding the request');
  assert.deepEqual((await via(c.b, phone).pending()).body.map((p) => p.id), [request.id], 'one push for the attempt');
  assert.equal(c.sent().length, 1, 'one push sent, not one per node');
  await via(c.b, phone).answer(request.id, 'approve');
  const [ra, rb] = await Promise.all([atA, atB]);
  assert.equal(ra.code, 'Access-Accept');
  assert.equal(rb.code, 'Access-Accept', 'the request the NAS now waits on is answered');
  assert.deepEqual(decisions(c.b, 'alice').map((d) => d.reason), ['push_approved']);
});

test('kill -9 of A mid-push: the retry at B joins the push, the phone approves through B, B answers Access-Accept', async (t) => {
  const c = await cluster(t);
  const phone = await userWithPhone(c, 'alice', c.b);
  // Node A as its own process (`radius-mfa serve`), so it can die as a process dies.
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-xnode-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `listen: { auth: "127.0.0.1:0" }
clients: [{ name: test-nas, address: 127.0.0.1, secret: "${SECRET}" }]
first_factor: { type: local }
mfa: { default_method: push, reject_delay: 0, push: { timeout: 20s } }
store: { type: postgres, url: "${c.db}", encryption_key: "${key.toString('hex')}" }
state: { type: redis, url: "${redis.url}", prefix: "${c.prefix}", timeout: 1s }
http: { listen: "127.0.0.1:0" }
log: { level: info }
`,
  );
  const a = await startServe(config);
  t.after(() => void a.stop());
  const heldAtA = login(a.authPort, 'alice', 'pw-alice', {}, 3);
  const request = await via(c.b, phone).waitForPending();
  a.child.kill('SIGKILL');
  await new Promise((r) => a.child.once('exit', r));
  assert.equal((await heldAtA).code, 'timeout', 'A died without answering');

  const retryAtB = login(c.b.authPort, 'alice');
  await until(() => (c.b.app.pending.size === 1 ? true : undefined), 'B holding the retry');
  assert.deepEqual((await via(c.b, phone).pending()).body.map((p) => p.id), [request.id], 'the push A sent, not a new one');
  assert.deepEqual((await via(c.b, phone).answer(request.id, 'approve')).body, { status: 'approved' });
  assert.equal((await retryAtB).code, 'Access-Accept');
  assert.deepEqual(decisions(c.b, 'alice').map((d) => d.reason), ['push_approved']);
  assert.equal(c.sent().length, 0, 'B sent no second push (A, without a push service, let the phone poll)');
});

test('number matching: challenged at A, approved through B, the number typed at B after a failover: accepted once', async (t) => {
  const c = await cluster(t, { mfa: { push: { number_matching: true } } });
  const phone = await userWithPhone(c, 'alice');
  const first = await login(c.a.authPort, 'alice');
  assert.equal(first.code, 'Access-Challenge');
  const state = first.attributes['State']![0]!;
  const request = await via(c.b, phone).waitForPending();
  assert.match(request.number!, /^\d{2}$/);
  // A retransmission of the attempt at B gets the same one outstanding State, not a second guess.
  const again = await login(c.b.authPort, 'alice');
  assert.equal(again.attributes['State']![0], state);
  await via(c.b, phone).answer(request.id, 'approve');
  const answered = await login(c.b.authPort, 'alice', request.number!, { State: state });
  assert.equal(answered.code, 'Access-Accept');
  const replayed = await login(c.a.authPort, 'alice', request.number!, { State: state });
  assert.equal(replayed.code, 'Access-Reject', 'the State is good once, on any node');
  assert.equal(decisions(c.a, 'alice').at(-1)?.reason, 'bad_state');
});

test('a fraud report through B rejects the request held at A and locks the user on every node', async (t) => {
  const c = await cluster(t);
  const phone = await userWithPhone(c, 'alice');
  const held = login(c.a.authPort, 'alice');
  const request = await via(c.b, phone).waitForPending();
  assert.deepEqual((await via(c.b, phone).answer(request.id, 'fraud')).body, { status: 'fraud_reported' });
  assert.equal((await held).code, 'Access-Reject');
  assert.equal(decisions(c.a, 'alice').at(-1)?.reason, 'fraud');
  for (const node of [c.a, c.b]) {
    assert.equal((await login(node.authPort, 'alice')).code, 'Access-Reject');
    assert.equal(decisions(node, 'alice').at(-1)?.reason, 'locked');
  }
  assert.equal(c.sent().length, 1, 'no push for a locked user');
});

test('portal behind a load balancer: a session made on A holds on B (CSRF included), sign-out at B ends it on A; a push sign-in moves between nodes', async (t) => {
  const c = await cluster(t, { mfa: { default_method: 'totp' } });
  const bob = await enrollTotp(c.a.store, 'bob', { password: 'pw-bob' });
  const atA = new PortalClient(base(c.a));
  await atA.signIn('bob', 'pw-bob', bob.codeAt(c.a.clock.now()));
  const atB = new PortalClient(base(c.b));
  atB.cookie = atA.cookie;
  const home = await atB.get('/portal/');
  assert.equal(home.status, 200, 'signed in at B with the cookie from A');
  assert.match(home.text, /bob/);
  const signOut = await atB.post('/portal/sign-out', {});
  assert.equal(signOut.status, 303, 'the CSRF token of the session is known at B');
  assert.match(signOut.location ?? '', /signed_out/);
  assert.equal((await atA.get('/portal/')).status, 303, 'signed out at A too');

  // Push sign-in behind a load balancer: the password at A, "send a push" at B, the phone answers
  // through A, the waiting page's poll and the completion land on B, the settings page on A.
  const phone = await userWithPhone(c, 'carol', c.b);
  const browser = new PortalClient(base(c.a));
  await browser.get('/portal/sign-in');
  assert.equal((await browser.post('/portal/sign-in', { username: 'carol', password: 'pw-carol' })).status, 303);
  await browser.get('/portal/sign-in');
  const onB = new PortalClient(base(c.b));
  onB.cookie = browser.cookie;
  onB.csrf = browser.csrf;
  assert.equal((await onB.post('/portal/sign-in/push', {})).status, 303, 'the sign-in started at A goes on at B');
  const request = await via(c.a, phone).waitForPending();
  assert.equal(request.client, 'portal');
  await via(c.a, phone).answer(request.id, 'approve');
  const status = await onB.get('/portal/sign-in/push/status');
  assert.deepEqual(JSON.parse(status.text), { state: 'answered', approved: true, number_required: false }, 'B sees the push and its answer');
  await onB.get('/portal/sign-in');
  const done = await onB.post('/portal/sign-in/push/complete', {});
  assert.equal(done.status, 303, done.text);
  assert.equal(done.location, '/portal/');
  browser.cookie = onB.cookie;
  assert.equal((await browser.get('/portal/')).status, 200, 'the new session (made at B) holds at A');
  assert.deepEqual(
    [...c.a.logs.filter({ event: 'portal_sign_in' }), ...c.b.logs.filter({ event: 'portal_sign_in' })].map((r) => `${r.user}:${r.result}:${r.reason}`).sort(),
    ['bob:accept:totp', 'carol:accept:push'],
  );
});

test('a decision published while A was not subscribed is read when A is back: the held request is still answered', async (t) => {
  const c = await cluster(t);
  const phone = await userWithPhone(c, 'alice');
  const held = login(c.a.authPort, 'alice');
  const request = await via(c.b, phone).waitForPending();
  const admin = new Redis(redis.port, '127.0.0.1');
  t.after(() => admin.quit().then(() => {}));
  // Cut every subscriber off (A's and B's); they reconnect by themselves within ~100 ms.
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await via(c.b, phone).answer(request.id, 'approve');
  assert.equal((await held).code, 'Access-Accept');
});

test('Redis stopped with a push held: the request is refused (state_unavailable), never accepted; back without a restart', async (t) => {
  const c = await cluster(t, { mfa: { push: { timeout: '2s' } } });
  const phone = await userWithPhone(c, 'alice');
  const held = login(c.a.authPort, 'alice', 'pw-alice', {}, 8);
  await via(c.b, phone).waitForPending();
  await redis.stop();
  const reply = await held;
  assert.equal(reply.code, 'Access-Reject');
  assert.equal(decisions(c.a, 'alice').at(-1)?.reason, 'state_unavailable');
  const refused = await via(c.b, phone).pending();
  assert.equal(refused.status, 503);
  assert.equal((refused.body as unknown as { error: { code: string } }).error.code, 'UNAVAILABLE', 'the API says so, with 503');

  await redis.start();
  // Redis came back empty (no persistence here): a new attempt, a new push, approved across nodes again.
  const accepted = await until(
    async () => {
      const attempt = login(c.a.authPort, 'alice', 'pw-alice', {}, 8);
      const listed = await until(async () => (await via(c.b, phone).pending().catch(() => undefined))?.body?.[0], 'the new push', 4000).catch(() => undefined);
      if (listed) await via(c.b, phone).answer(listed.id, 'approve');
      return (await attempt).code === 'Access-Accept' ? true : undefined;
    },
    'an accepted push after Redis came back',
    30_000,
  );
  assert.equal(accepted, true);
});

test('a push whose node died before timing it out reads as timed out everywhere: not listed, not approvable, claimed as a timeout', async (t) => {
  const config = configSchema.shape.state.parse({ type: 'redis', url: redis.url, prefix: `dead${++clusters}:` });
  const [a, b] = await Promise.all([openRedisState(config, { now: Date.now, prefix: config.prefix, sealKey: key }), openRedisState(config, { now: Date.now, prefix: config.prefix, sealKey: key })]);
  t.after(() => Promise.all([a.close(), b.close()]));
  const [pa, pb] = [a.pushes(), b.pushes()];
  await Promise.all([pa.start(), pb.start()]);
  const push = await pa.create({ username: 'alice', clientName: 'vpn', nasIp: undefined, nasIdentifier: undefined, callingStation: '203.0.113.7', pinRequired: false, number: '42' }, 200);
  await pa.close(); // A dies: its timer never fires
  assert.deepEqual((await pb.openFor('alice')).map((p) => p.id), [push.id]);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(await pb.openFor('alice'), [], 'past its timeout it is not listed');
  assert.deepEqual((await pb.get(push.id))?.outcome, { kind: 'timeout' });
  assert.equal(await pb.decide(push.id, { kind: 'approve', deviceId: 'dev-1' }), false, 'an approval after the timeout is refused');
  assert.deepEqual(await pb.wait(push.id), { kind: 'timeout' });
  const late = await pb.create({ username: 'alice', clientName: 'vpn', nasIp: undefined, nasIdentifier: undefined, callingStation: '203.0.113.7', pinRequired: false, number: '17' }, 200);
  await pb.close();
  await new Promise((r) => setTimeout(r, 300));
  const c = await openRedisState(config, { now: Date.now, prefix: config.prefix, sealKey: key });
  t.after(() => c.close());
  assert.deepEqual(await c.pushes().claim(late.id), { kind: 'timeout' }, 'an answer with its State finds it timed out, once');
  assert.equal(await c.pushes().claim(late.id), undefined);
});
