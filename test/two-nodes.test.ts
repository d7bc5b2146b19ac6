// Two nodes as an admin runs them (two `radius-mfa serve` processes on config files) sharing one
// PostgreSQL and one Redis, driven by the real radclient: what is enrolled at one node signs in at the
// other, a code used at one is a replay at the other, failures spread over both lock on both, and
// Redis or PostgreSQL stopped and started under traffic: every request answered, no Accept while the
// engine is down, its own reject reason, Status-Server names what is down, recovery without a restart.
// The nodes run on the real clock (they are separate processes): every code is computed when it is sent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBase32Secret } from '../src/mfa/totp-secret.js';
import type { Config } from '../src/config/schema.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { runCli } from './helpers/cli.js';
import { startPostgres, type PostgresInstance } from './helpers/postgres.js';
import { radclient, type RadclientResult } from './helpers/radclient.js';
import { startRedis, type RedisInstance } from './helpers/redis.js';
import { startServe, type LogLine, type ServeProcess } from './helpers/serve-process.js';
import { codeAt, enrollTotp } from './helpers/server.js';

const SECRET = `two-nodes-${randomBytes(12).toString('hex')}`;
const PASSWORD = 'Two-Nodes-Passw0rd';

let pg: PostgresInstance;
let redis: RedisInstance;
let dir: string;
let configA: string;
let a: ServeProcess;
let b: ServeProcess;
/** TOTP secrets by user, as the tests know them. */
const secrets = new Map<string, Buffer>();

function nodeConfig(dbUrl: string, keyHex: string): string {
  return `# one node of test/two-nodes.test.ts: every node has the same file
listen: { auth: "127.0.0.1:0" }
clients: [{ name: vpn, address: 127.0.0.1, secret: "${SECRET}", require_message_authenticator: true }]
first_factor: { type: local, password_hash: { memory: 8192, time: 1 } }
mfa: { reject_delay: 0, default_method: totp }
store: { type: postgres, url: "${dbUrl}", pool: 4, encryption_key: "${keyHex}" }
state: { type: redis, url: "${redis.url}", timeout: 1s }
metrics: { listen: "127.0.0.1:0" }
log: { level: info }
`;
}

before(async () => {
  [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  const dbUrl = await pg.createDatabase();
  const keyHex = randomBytes(32).toString('hex');
  dir = mkdtempSync(join(tmpdir(), 'radius-mfa-two-nodes-'));
  configA = join(dir, 'node-a.yaml');
  const configB = join(dir, 'node-b.yaml');
  writeFileSync(configA, nodeConfig(dbUrl, keyHex));
  writeFileSync(configB, nodeConfig(dbUrl, keyHex));
  // Both at once on an empty database: the migrations take their lock in turn.
  [a, b] = await Promise.all([startServe(configA), startServe(configB)]);
  // The other users go in as a provisioning script would, through the Store the nodes use.
  const store = await openPostgresStore({ type: 'postgres', url: dbUrl, pool: 2 } as Config['store'], Buffer.from(keyHex, 'hex'));
  try {
    for (const name of ['bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'traffic']) secrets.set(name, (await enrollTotp(store, name, { password: PASSWORD })).secret);
  } finally {
    await store.close();
  }
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([pg?.close(), redis?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let tags = 0;

interface Login {
  reply: RadclientResult;
  /** The node's audit line for this request (found by its NAS-Identifier); undefined when none came. */
  audit: LogLine | undefined;
}

/** One PAP+TOTP login through `node`, the code computed now (`stepOffset` steps away) unless given. */
async function login(node: ServeProcess, user: string, opts: { code?: string; password?: string; station?: string; stepOffset?: number } = {}): Promise<Login> {
  const tag = `t${++tags}`;
  const code = opts.code ?? codeAt(secrets.get(user)!, Date.now() + (opts.stepOffset ?? 0) * 30_000);
  const attrs = { 'User-Name': user, 'User-Password': `${opts.password ?? PASSWORD}${code}`, 'NAS-Identifier': tag, 'Calling-Station-Id': opts.station ?? `station-${user}` };
  const reply = await radclient(attrs, { port: node.authPort, secret: SECRET, timeout: 5 });
  // The audit line is written before the reply is sent, but the pipe may deliver it a little later.
  let audit: LogLine | undefined;
  for (let i = 0; i < 250 && reply.code !== 'timeout' && !(audit = node.lines.find((l) => l.audit === true && l.nas_id === tag)); i++) await new Promise((r) => setTimeout(r, 20));
  return { reply, audit };
}

function status(node: ServeProcess): Promise<RadclientResult> {
  return radclient({}, { port: node.authPort, secret: SECRET, type: 'status', timeout: 5 });
}

/** Logins through `node` until one is accepted (the engine is back and reconnected); bounded. */
async function untilAccepted(node: ServeProcess, user: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await login(node, user)).reply.code === 'Access-Accept') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${user} was never accepted again after the engine came back\n${node.output()}`);
}

const lineCount = (node: ServeProcess, msg: string) => node.lines.filter((l) => l.msg === msg).length;

test('a user enrolled at node A through the CLI signs in at node B', async () => {
  const add = await runCli(configA, dir, ['user', 'add', 'alice', '--password-stdin'], `${PASSWORD}\n`);
  assert.equal(add.code, 0, add.stderr);
  const enroll = await runCli(configA, dir, ['totp', 'enroll', 'alice']);
  assert.equal(enroll.code, 0, enroll.stderr);
  const base32 = /secret=([A-Z2-7]+)/.exec(enroll.stdout)?.[1];
  assert.ok(base32, `no otpauth:// secret in\n${enroll.stdout}`);
  const decoded = parseBase32Secret(base32);
  assert.ok(decoded.ok);
  secrets.set('alice', decoded.secret);

  const atB = await login(b, 'alice');
  assert.equal(atB.reply.code, 'Access-Accept', `${atB.reply.stdout}\n${b.output()}`);
  assert.equal(atB.audit?.reason, 'second_factor_ok');
  const wrong = await login(b, 'alice', { password: 'not-the-password' });
  assert.equal(wrong.reply.code, 'Access-Reject');
});

test('a code accepted at node A is a replay at node B', async () => {
  const code = codeAt(secrets.get('bob')!, Date.now());
  const atA = await login(a, 'bob', { code });
  assert.equal(atA.reply.code, 'Access-Accept', a.output());
  const atB = await login(b, 'bob', { code });
  assert.equal(atB.reply.code, 'Access-Reject');
  assert.equal(atB.audit?.reason, 'replay');
  // B itself is fine: the next step's code (within the window) signs in there.
  const next = await login(b, 'bob', { stepOffset: 1 });
  assert.equal(next.reply.code, 'Access-Accept', b.output());
});

test('five failures spread over nodes A and B lock the user on both', async () => {
  const station = 'stranger-203.0.113.9';
  const nodes = [a, b, a, b, a];
  for (const [i, node] of nodes.entries()) {
    const r = await login(node, 'erin', { password: `wrong-${i}`, station });
    assert.equal(r.reply.code, 'Access-Reject');
    assert.notEqual(r.audit?.reason, 'locked', `locked after ${i} failures already`);
  }
  // Neither node saw five by itself (A three, B two): only a shared count locks.
  for (const node of [b, a]) {
    const r = await login(node, 'erin', { station });
    assert.equal(r.reply.code, 'Access-Reject', 'the right password and code from the stranger source after five failures');
    assert.equal(r.audit?.reason, 'locked');
  }
});

interface Sent {
  node: 'A' | 'B';
  /** Phase when sent and when answered: a request counts as "during the outage" only if both are "down". */
  sentIn: string;
  answeredIn: string;
  login: Login;
}

/**
 * Logins of `traffic` with right password and code, alternating A and B, one at a time, until stop()
 * (at most 600 requests or 90 s). phase() tags each with what the engine was doing.
 */
function traffic(phase: () => string) {
  const sent: Sent[] = [];
  let stopped = false;
  const deadline = Date.now() + 90_000;
  const done = (async () => {
    for (let i = 0; i < 600 && !stopped && Date.now() < deadline; i++) {
      const node = i % 2 === 0 ? a : b;
      const sentIn = phase();
      const l = await login(node, 'traffic');
      sent.push({ node: node === a ? 'A' : 'B', sentIn, answeredIn: phase(), login: l });
    }
  })();
  return {
    sent,
    count: (p: (s: Sent) => boolean) => sent.filter(p).length,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

async function waitForCount(get: () => number, n: number, what: string): Promise<void> {
  for (let i = 0; i < 1500 && get() < n; i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(get() >= n, `timed out waiting for ${what}`);
}

/** The checks every outage test makes, for `engine` (store/state) of `kind` (postgres/redis). */
async function outageUnderTraffic(engine: 'store' | 'state', kind: string, daemon: { stop(): Promise<void>; start(): Promise<void> }, recover: [string, string]): Promise<void> {
  const reason = `${engine}_unavailable`;
  const downLine = (n: ServeProcess) => n.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(`${kind} (${engine}) unavailable:`)).length;
  const downBefore = [downLine(a), downLine(b)];
  const upBefore = [lineCount(a, `${kind} (${engine}) answers again`), lineCount(b, `${kind} (${engine}) answers again`)];
  let phase = 'up';
  const load = traffic(() => phase);
  try {
    await waitForCount(() => load.count((s) => s.login.reply.code !== 'timeout'), 4, 'traffic answered before the outage');
    for (const node of [a, b]) {
      const healthy = await status(node);
      assert.equal(healthy.code, 'Access-Accept');
      assert.equal(healthy.attributes['Reply-Message'], undefined, 'nothing is down yet');
    }

    phase = 'stopping';
    await daemon.stop();
    phase = 'down';
    const during = (s: Sent) => s.sentIn === 'down' && s.answeredIn === 'down';
    await waitForCount(() => Math.min(load.count((s) => during(s) && s.node === 'A'), load.count((s) => during(s) && s.node === 'B')), 2, 'traffic answered by both nodes during the outage');
    for (const node of [a, b]) {
      const st = await status(node);
      assert.equal(st.code, 'Access-Accept', 'Status-Server: the node itself is alive');
      assert.match(st.attributes['Reply-Message']?.[0] ?? '', new RegExp(`${kind} \\(${engine}\\) unavailable.*${reason}`), st.stdout);
      const r = await login(node, recover[node === a ? 0 : 1]);
      assert.equal(r.reply.code, 'Access-Reject');
      assert.equal(r.audit?.reason, reason);
    }
    phase = 'starting';
    await daemon.start();
    phase = 'back';
    // The same processes recover by themselves.
    await untilAccepted(a, recover[0]);
    await untilAccepted(b, recover[1]);
    await waitForCount(() => load.count((s) => s.sentIn === 'back' && s.login.reply.code !== 'timeout'), 2, 'traffic answered after the outage');
  } finally {
    await load.stop();
  }

  const outage = load.sent.filter((s) => s.sentIn === 'down' && s.answeredIn === 'down');
  assert.ok(outage.length >= 4, `only ${outage.length} requests during the outage`);
  assert.deepEqual(
    outage.map((s) => [s.login.reply.code, s.login.audit?.reason]).filter(([c, r]) => c !== 'Access-Reject' || r !== reason),
    [],
    `every request during the outage is rejected with ${reason}`,
  );
  assert.ok(outage.some((s) => s.node === 'A') && outage.some((s) => s.node === 'B'));
  assert.deepEqual(load.sent.filter((s) => s.login.reply.code === 'timeout').map((s) => [s.node, s.sentIn]), [], 'every request is answered');
  for (const [i, node] of [a, b].entries()) {
    assert.equal(node.child.exitCode, null, 'the node is still running');
    assert.equal(downLine(node) - downBefore[i]!, 1, `one outage line per node, not one per request\n${node.output()}`);
    assert.equal(lineCount(node, `${kind} (${engine}) answers again`) - upBefore[i]!, 1);
    assert.deepEqual(node.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('bug:')), []);
    const st = await status(node);
    assert.equal(st.attributes['Reply-Message'], undefined, `Status-Server still reports an outage after recovery: ${st.stdout}`);
    const ready = await fetch(`http://127.0.0.1:${node.metricsPort}/readyz`);
    assert.equal(ready.status, 200);
  }
}

test('Redis stopped and started under traffic: state_unavailable, Status-Server says so, both nodes recover', async () => {
  await outageUnderTraffic('state', 'redis', redis, ['carol', 'dave']);
});

test('PostgreSQL stopped and started under traffic: store_unavailable, Status-Server says so, both nodes recover', async () => {
  await outageUnderTraffic('store', 'postgres', pg, ['frank', 'gina']);
});
