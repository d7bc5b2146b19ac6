// RADIUS over TLS (RFC 6614): the real radsecproxy in front of the real radclient connects to our
// listener with a client certificate made by openssl; a raw node:tls client does what radsecproxy cannot
// (broken frames, slowloris, many requests on one connection).
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { createActivation } from '../src/mfa/activation.js';
import { Code, decodePacket } from '../src/radius/packet.js';
import { SimulatedPhone } from './helpers/phone.js';
import { radclient } from './helpers/radclient.js';
import { startRadsecproxy, type Radsecproxy } from './helpers/radsecproxy.js';
import { enrollTotp, startTestServer, type ConfigInput, type TestServer } from './helpers/server.js';
import { makeTestPki, pem, type CertFiles, type TestPki } from './helpers/tls-certs.js';
import { buildAccessRequest, decodeReply, signMessageAuthenticator } from './helpers/udp.js';

let pki: TestPki;
let vpn1: CertFiles;
let stranger: CertFiles;
let untrusted: CertFiles;

before(() => {
  pki = makeTestPki();
  vpn1 = pki.client('vpn1.example.com');
  stranger = pki.client('stranger.example.com');
  untrusted = pki.client('vpn1.example.com', { untrusted: true });
});
after(() => pki?.remove());

async function server(t: TestContext, over: ConfigInput = {}, radsec: ConfigInput = {}): Promise<TestServer> {
  const s = await startTestServer({
    config: {
      listen: { auth: '127.0.0.1:0', acct: '127.0.0.1:0', radsec: '127.0.0.1:0' },
      radsec: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca, handshake_timeout: '2s', ...radsec },
      clients: [{ name: 'vpn1', tls: { subject: 'CN=vpn1.example.com' } }],
      ...over,
    },
  });
  t.after(() => s.close());
  return s;
}

async function proxy(t: TestContext, s: TestServer, cert: CertFiles, opts: { tlsVersion?: string; statusServer?: boolean } = {}): Promise<Radsecproxy> {
  const p = await startRadsecproxy({ serverPort: s.radsecPort, ca: pki.ca, cert: cert.cert, key: cert.key, udpSecret: 'nas-Secret-0123456789', ...opts });
  t.after(() => p.stop());
  return p;
}

// radclient's Message-Authenticator on an Accounting-Request does not verify at radsecproxy 1.9.2: none there.
const viaProxy = (p: Radsecproxy, attributes: Record<string, string>, type: 'auth' | 'acct' = 'auth', timeout = 8) =>
  radclient(attributes, { port: p.port, secret: 'nas-Secret-0123456789', type, timeout, messageAuthenticator: type === 'auth' });

/** A raw RADIUS/TLS connection with a client certificate. */
async function tlsConnect(s: TestServer, cert: CertFiles = vpn1): Promise<TLSSocket> {
  const socket = connect({ host: '127.0.0.1', port: s.radsecPort, ca: pem(pki.ca), cert: pem(cert.cert), key: pem(cert.key), servername: 'localhost' });
  await once(socket, 'secureConnect');
  return socket;
}

/** Collects whole RADIUS packets from a TLS stream. */
function packets(socket: TLSSocket): { next(timeoutMs?: number): Promise<Buffer> } {
  let buf = Buffer.alloc(0);
  const queue: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= buf.readUInt16BE(2)) {
      const p = buf.subarray(0, buf.readUInt16BE(2));
      buf = buf.subarray(p.length);
      const w = waiters.shift();
      if (w) w(p);
      else queue.push(p);
    }
  });
  return {
    next: (timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const q = queue.shift();
        if (q) return resolve(q);
        const timer = setTimeout(() => reject(new Error('no RADIUS packet on the TLS stream')), timeoutMs);
        waiters.push((b) => (clearTimeout(timer), resolve(b)));
      }),
  };
}

function statusServer(secret: string, identifier = 7): Buffer {
  const p = buildAccessRequest({ secret, identifier });
  p[0] = Code.StatusServer;
  signMessageAuthenticator(p, p.length - 18, Buffer.from(secret));
  return p;
}

/** Resolves when the server has closed the connection: a reset (ECONNRESET) is a close too, not a failure. */
const closed = (socket: Socket) =>
  socket.destroyed
    ? Promise.resolve()
    : new Promise<void>((resolve) => {
        socket.on('error', () => {});
        socket.once('close', () => resolve());
      });

test('PAP+TOTP and accounting through radsecproxy: the client is known by its certificate CN; secret "radsec"', async (t) => {
  const s = await server(t);
  const alice = await enrollTotp(s.store, 'alice', { password: 'alice-pw' });
  const p = await proxy(t, s, vpn1);
  const r = await viaProxy(p, { 'User-Name': 'alice', 'User-Password': 'alice-pw' + alice.codeAt(s.clock.now()), 'NAS-Identifier': 'vpn1' });
  assert.equal(r.code, 'Access-Accept', r.stdout + p.output());
  const bad = await viaProxy(p, { 'User-Name': 'alice', 'User-Password': 'alice-pw000000', 'NAS-Identifier': 'vpn1' });
  assert.equal(bad.code, 'Access-Reject');
  const acct = await viaProxy(p, { 'User-Name': 'alice', 'Acct-Status-Type': 'Start', 'Acct-Session-Id': 'tls-1', 'NAS-Identifier': 'vpn1' }, 'acct');
  assert.equal(acct.code, 'Accounting-Response', acct.stdout);
  const audit = s.logs.audits('alice');
  assert.deepEqual(
    audit.map((a) => [a.client, a.reason]),
    [
      ['vpn1', 'second_factor_ok'],
      ['vpn1', 'bad_code'],
    ],
  );
  assert.equal(s.logs.filter({ msg: 'accounting', session: 'tls-1' }).length, 1);
});

test('push through radsecproxy: the request is held on the TLS connection until the phone approves', async (t) => {
  const s = await server(t, { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '5s' } } });
  await enrollTotp(s.store, 'bob', { password: 'bob-pw' });
  const activation = await createActivation(s.store, s.config, 'bob', s.clock.now());
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, activation.activation_code);
  const p = await proxy(t, s, vpn1);
  const login = viaProxy(p, { 'User-Name': 'bob', 'User-Password': 'bob-pw', 'NAS-Identifier': 'vpn1' });
  const pending = await phone.waitForPending(8000);
  assert.equal(pending.client, 'vpn1');
  await phone.answer(pending.id, 'approve');
  const r = await login;
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.equal(s.logs.audits('bob').find((a) => a.msg === 'decision')?.reason, 'push_approved');
});

// radsecproxy answers a radclient Status-Server itself (it is hop-by-hop, RFC 5997 §3), so a raw TLS client sends ours.
test('Status-Server over TLS is answered with a signed Access-Accept', async (t) => {
  const s = await server(t);
  const socket = await tlsConnect(s);
  t.after(() => socket.destroy());
  const stream = packets(socket);
  const req = statusServer('radsec');
  socket.write(req);
  const reply = decodeReply(await stream.next(), req, 'radsec');
  assert.equal(reply.packet.code, Code.AccessAccept);
  assert.ok(reply.verified);
});

test('many requests in flight on one connection, written in one chunk and byte by byte, all answered', async (t) => {
  const s = await server(t, { mfa: { default_method: 'none' } });
  // Twenty users: one user's attempts in flight at once are bounded by the lockout (max_failures).
  for (let i = 0; i < 20; i++) await enrollTotp(s.store, `carol${i}`, { password: 'carol-pw' });
  const socket = await tlsConnect(s);
  t.after(() => socket.destroy());
  const stream = packets(socket);
  const reqs = Array.from({ length: 20 }, (_, i) => buildAccessRequest({ secret: 'radsec', identifier: i, userName: `carol${i}`, password: 'carol-pw' }));
  socket.setNoDelay(true);
  socket.write(Buffer.concat(reqs.slice(0, 18)));
  for (const r of reqs.slice(18)) for (const b of r) socket.write(Buffer.from([b]));
  const seen = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const bytes = await stream.next();
    const req = reqs[bytes[1]!]!;
    const reply = decodeReply(bytes, req, 'radsec');
    assert.ok(reply.verified);
    assert.equal(reply.packet.code, Code.AccessAccept);
    seen.add(bytes[1]!);
  }
  assert.equal(seen.size, 20);
  // The same dedupe as UDP (RFC 5080 §2.2.2): a repeated request gets the cached reply, decided once.
  const before = s.logs.audits('carol3').length;
  socket.write(reqs[3]!);
  const again = await stream.next();
  assert.equal(again[1], 3);
  assert.ok(decodeReply(again, reqs[3]!, 'radsec').verified);
  assert.equal(s.logs.audits('carol3').length, before);
  assert.equal(s.app.server.counters.resent, 1);
});

test('a trusted certificate that names no client, and one from an unknown CA, are refused; the address restricts too', async (t) => {
  const s = await server(t, {
    clients: [
      { name: 'vpn1', tls: { subject: 'CN=vpn1.example.com' } },
      { name: 'by-print', tls: { fingerprint: `sha256:${stranger.fingerprint256}` }, address: '192.0.2.1' },
    ],
  });
  await enrollTotp(s.store, 'alice', { password: 'alice-pw', method: 'none' });
  for (const cert of [stranger, untrusted]) {
    const p = await startRadsecproxy({ serverPort: s.radsecPort, ca: pki.ca, cert: cert.cert, key: cert.key, udpSecret: 'nas-Secret-0123456789', tlsVersion: 'TLS1_2' });
    try {
      const r = await radclient({ 'User-Name': 'alice', 'User-Password': 'alice-pw' }, { port: p.port, secret: 'nas-Secret-0123456789', timeout: 1 });
      assert.equal(r.code, 'timeout');
    } finally {
      await p.stop();
    }
  }
  await s.logs.waitFor((r) => typeof r.msg === 'string' && r.msg.includes('matches no client'));
  await s.logs.waitFor((r) => typeof r.msg === 'string' && r.msg.includes('TLS handshake failed'));
  assert.equal(s.logs.audits().length, 0);
  // The fingerprint matches, but from 127.0.0.1 instead of 192.0.2.1: refused; by fingerprint from anywhere: accepted.
  const refused = await tlsConnect(s, stranger);
  await closed(refused);
  const s2 = await server(t, { clients: [{ name: 'by-print', tls: { fingerprint: `sha256:${stranger.fingerprint256.replace(/:/g, '').toLowerCase()}` } }] });
  const ok = await tlsConnect(s2, stranger);
  t.after(() => ok.destroy());
  const stream = packets(ok);
  const req = statusServer('radsec');
  ok.write(req);
  assert.equal(decodePacket(await stream.next()).ok, true);
});

test('fuzz: oversize and undersize Length close the connection; partial frames and slowloris time out; the process and memory stay bounded', async (t) => {
  const s = await server(t, { mfa: { default_method: 'none' } }, { handshake_timeout: '300ms' });
  await enrollTotp(s.store, 'dave', { password: 'dave-pw' });
  for (const length of [0, 1, 19, 4097, 0xffff]) {
    const socket = await tlsConnect(s);
    const junk = Buffer.alloc(64, 0x41);
    junk[0] = Code.AccessRequest;
    junk.writeUInt16BE(length, 2);
    socket.write(junk);
    await closed(socket);
  }
  // A partial frame that never completes, and one that trickles a byte at a time slower than the frame timeout.
  const stalled = await tlsConnect(s);
  stalled.write(buildAccessRequest({ secret: 'radsec', userName: 'dave', password: 'dave-pw' }).subarray(0, 30));
  const trickle = await tlsConnect(s);
  const slow = buildAccessRequest({ secret: 'radsec', userName: 'dave', password: 'dave-pw' });
  let at = 0;
  const drip = setInterval(() => !trickle.destroyed && at < slow.length && trickle.write(slow.subarray(at, ++at)), 100);
  t.after(() => clearInterval(drip));
  await Promise.all([closed(stalled), closed(trickle)]);
  clearInterval(drip);
  assert.ok(at < slow.length, 'the trickled packet was never completed');
  // idle_timeout: a connection with no traffic and nothing being decided is closed.
  const s3 = await server(t, {}, { idle_timeout: '300ms' });
  const quiet = await tlsConnect(s3);
  await closed(quiet);
  // A TCP connection that never starts TLS is cut at the handshake timeout.
  const { connect: tcp } = await import('node:net');
  await closed(tcp(s.radsecPort, '127.0.0.1'));
  // Memory: 200 connections each holding the largest partial frame (4095 octets), then all cut.
  const heapBefore = process.memoryUsage().heapUsed;
  const many = await Promise.all(Array.from({ length: 200 }, () => tlsConnect(s)));
  const big = Buffer.alloc(4095, 0);
  big[0] = Code.AccessRequest;
  big.writeUInt16BE(4096, 2);
  for (const c of many) c.write(big);
  await Promise.all(many.map(closed));
  const grown = process.memoryUsage().heapUsed - heapBefore;
  assert.ok(grown < 64 * 1024 * 1024, `heap grew ${grown} bytes`);
  assert.ok((s.app.server.drops.get('bad_frame_length') ?? 0) >= 5);
  assert.ok((s.app.server.drops.get('frame_timeout') ?? 0) >= 202);
  // Still serving.
  const socket = await tlsConnect(s);
  t.after(() => socket.destroy());
  const stream = packets(socket);
  const req = buildAccessRequest({ secret: 'radsec', userName: 'dave', password: 'dave-pw' });
  socket.write(req);
  assert.equal(decodeReply(await stream.next(), req, 'radsec').packet.code, Code.AccessAccept);
  assert.equal(s.app.server.radsecConnections, 1);
});
