// A local stand-in for a browser push service (RFC 8030): a real HTTPS server on 127.0.0.1 with a
// throwaway certificate that only the returned https.Agent trusts. It records each push as sent.
// Also the subscriber's side, written from the RFCs with node:crypto: a subscription key pair,
// RFC 8291 decryption and RFC 8292 VAPID token checks, so the tests do not trust web-push to check itself.
import { execFileSync } from 'node:child_process';
import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, verify, type ECDH } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, Agent, type Server } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WEB_PUSH_PREFIX, type WebPushSubscription } from '../../src/mfa/push-token.js';

export interface ReceivedPush {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A status to answer with, or 'hang' to never answer. */
export type PushReply = number | 'hang';

let tls: { key: string; cert: string } | undefined;

/** A self-signed P-256 certificate for 127.0.0.1, made once per test process. */
function testCertificate(): { key: string; cert: string } {
  if (tls) return tls;
  const dir = mkdtempSync(join(tmpdir(), 'fake-push-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    return tls;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export class FakePushService {
  readonly received: ReceivedPush[] = [];
  /** Trusts this service's certificate, and nothing else. */
  readonly agent: Agent;
  private waiters: (() => void)[] = [];

  private constructor(
    private readonly server: Server,
    cert: string,
    private readonly reply: (n: number) => PushReply,
  ) {
    this.agent = new Agent({ ca: cert, keepAlive: false });
  }

  static async start(reply: (n: number) => PushReply = () => 201): Promise<FakePushService> {
    const { key, cert } = testCertificate();
    let fake: FakePushService;
    const server = createServer({ key, cert }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        fake.received.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
        for (const wake of fake.waiters.splice(0)) wake();
        const r = fake.reply(fake.received.length);
        if (r !== 'hang') res.writeHead(r, { location: `/message/${fake.received.length}` }).end();
      });
    });
    fake = new FakePushService(server, cert, reply);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get origin(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resolves once `count` pushes have arrived; rejects after `timeoutMs`. */
  async waitForPushes(count: number, timeoutMs = 5000): Promise<ReceivedPush[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.received.length} of ${count} pushes arrived within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
    return this.received;
  }

  close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A browser's side of a subscription: its ECDH key pair and auth secret (RFC 8291 §2). */
export class Subscriber {
  readonly ecdh: ECDH = createECDH('prime256v1');
  readonly auth = randomBytes(16);

  constructor(readonly endpoint: string) {
    this.ecdh.generateKeys();
  }

  get subscription(): WebPushSubscription {
    return { endpoint: this.endpoint, keys: { p256dh: this.ecdh.getPublicKey().toString('base64url'), auth: this.auth.toString('base64url') } };
  }

  /** What the app sends as push_token: "webpush:" + subscription.toJSON() as a browser gives it. */
  get pushToken(): string {
    return WEB_PUSH_PREFIX + JSON.stringify({ ...this.subscription, expirationTime: null });
  }

  /** RFC 8291 §3.4 key derivation, RFC 8188 aes128gcm record: the plaintext of a push body. */
  decrypt(body: Buffer): Buffer {
    const salt = body.subarray(0, 16);
    const recordSize = body.readUInt32BE(16);
    const keyIdLength = body[20]!;
    const senderKey = body.subarray(21, 21 + keyIdLength);
    const record = body.subarray(21 + keyIdLength);
    if (record.length > recordSize) throw new Error('more than one record: not expected for a small payload');
    const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), this.ecdh.getPublicKey(), senderKey]);
    const ikm = Buffer.from(hkdfSync('sha256', this.ecdh.computeSecret(senderKey), this.auth, keyInfo, 32));
    const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
    const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
    const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
    decipher.setAuthTag(record.subarray(-16));
    const padded = Buffer.concat([decipher.update(record.subarray(0, -16)), decipher.final()]);
    // RFC 8188 §2: the last record's plaintext ends with the delimiter 0x02, then zero padding.
    let end = padded.length - 1;
    while (end >= 0 && padded[end] === 0) end--;
    if (padded[end] !== 2) throw new Error('no last-record delimiter');
    return padded.subarray(0, end);
  }
}

export interface VapidClaims {
  aud: string;
  sub: string;
  exp: number;
}

/**
 * RFC 8292 §3: `Authorization: vapid t=JWT, k=PUBLIC_KEY`. Checks the ES256 signature with k and
 * returns the claims and k; throws when anything does not verify.
 */
export function verifyVapid(authorization: string | undefined): { claims: VapidClaims; publicKey: string } {
  const m = /^vapid t=([\w-]+\.[\w-]+\.[\w-]+), k=([\w-]+)$/.exec(authorization ?? '');
  if (!m) throw new Error(`not a VAPID Authorization header: ${authorization}`);
  const [, jwt, k] = m as unknown as [string, string, string];
  const [header, payload, signature] = jwt.split('.') as [string, string, string];
  if (JSON.parse(Buffer.from(header, 'base64url').toString()).alg !== 'ES256') throw new Error('alg is not ES256');
  const point = Buffer.from(k, 'base64url');
  const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }, format: 'jwk' });
  if (!verify('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'))) {
    throw new Error('the VAPID JWT signature does not verify with k');
  }
  return { claims: JSON.parse(Buffer.from(payload, 'base64url').toString()) as VapidClaims, publicKey: k };
}
