/**
 * Self-check of the bench's own TOTP and password hiding (run: node --import tsx bench/check.ts). bench/run.ts
 * runs it first, so a wrong code never turns into "the server rejects everything".
 * Prints the per-call cost of each primitive next to node:crypto's, because the generator's own
 * speed is part of what the benchmark has to prove.
 */
import { createHash, createHmac, hash, randomBytes, randomFillSync } from 'node:crypto';
import { strict as assert } from 'node:assert';
import { pathToFileURL } from 'node:url';
import { hmacMd5, hmacMd5Key, md5 } from '../src/radius/md5.js';
import { hideInPlace } from './packet.js';
import { encodeBase32, totpCode } from './users.js';

export function checkCrypto(): void {
  // src/radius/md5.ts, which the bench uses too, is checked against node:crypto and the RFCs by test/md5.test.ts.
  // RFC 6238 Appendix B (SHA1, seed "12345678901234567890"), last 6 of the 8-digit codes.
  const seed = Buffer.from('12345678901234567890');
  assert.equal(encodeBase32(seed), 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
  const vectors: Array<[number, string]> = [[59, '94287082'], [1111111109, '07081804'], [1111111111, '14050471'],
    [1234567890, '89005924'], [2000000000, '69279037'], [20000000000, '65353130']];
  for (const [t, code] of vectors) {
    assert.equal(totpCode(seed, Math.floor(t / 30), 8), code, `totp8 t=${t}`);
    assert.equal(totpCode(seed, Math.floor(t / 30), 6), code.slice(2), `totp6 t=${t}`);
  }
  // RFC 2865 §7.1: "arctangent" hidden with secret xyzzy5461 and this Request Authenticator.
  const ra = Buffer.from('0f403f9473978057bd83d5cb98f4227a', 'hex');
  const hidden = Buffer.alloc(16);
  hidden.write('arctangent');
  hideInPlace(hidden, 0, 16, Buffer.from('xyzzy5461'), ra, 0);
  assert.equal(hidden.toString('hex'), '0dbe708d93d413ce3196e43f782a0aee');
}

function perCall(fn: () => void, n = 200_000): number {
  for (let i = 0; i < 20_000; i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t0) * 1000) / n;
}

/** µs per call of each primitive the generator uses, ours vs node:crypto, on a 100-byte packet. */
export function measureCrypto(): Record<string, number> {
  const pkt = randomBytes(100);
  const secret = Buffer.from('bench-secret');
  const key = hmacMd5Key(secret);
  const out = new Uint8Array(16);
  const pool = Buffer.alloc(64 * 1024);
  let off = pool.length;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    md5_js_us: r(perCall(() => md5(pkt, 0, 100, out, 0))),
    md5_node_createHash_us: r(perCall(() => createHash('md5').update(pkt).digest())),
    md5_node_hash_us: r(perCall(() => hash('md5', pkt, 'buffer'))),
    hmac_md5_js_us: r(perCall(() => hmacMd5(key, pkt, 0, 100, out, 0))),
    hmac_md5_node_us: r(perCall(() => createHmac('md5', secret).update(pkt).digest())),
    random16_randomBytes_us: r(perCall(() => randomBytes(16))),
    random16_pool_us: r(perCall(() => {
      if (off + 16 > pool.length) { randomFillSync(pool); off = 0; }
      off += 16;
    })),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  checkCrypto();
  console.log('bench crypto self-check: RFC 6238 App. B, RFC 2865 §7.1: ok');
  console.log(measureCrypto());
}
