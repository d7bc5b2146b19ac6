// MS-CHAPv2 as a NAS's peer computes it (RFC 2759 §8 / the §9.2 example), and the MPPE keys both ends
// derive (RFC 3079 §3). radclient 3.2.1 builds only MS-CHAPv1, so tests build MS-CHAP2-Response here.
// MD4 comes from the openssl CLI (its legacy provider: Node's OpenSSL 3 refuses MD4); single DES is 3DES
// with one key three times over.
import { createCipheriv, createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';

export function md4(data: Buffer): Buffer {
  return execFileSync('openssl', ['dgst', '-md4', '-binary', '-provider', 'legacy', '-provider', 'default'], { input: data });
}

const sha1 = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('sha1')).digest();

/** RFC 2759 §8.3 NtPasswordHash: MD4 of the UTF-16LE password. */
export function ntPasswordHash(password: string): Buffer {
  return md4(Buffer.from(password, 'utf16le'));
}

/** RFC 2759 §8.2 ChallengeHash. */
export function challengeHash(peerChallenge: Buffer, authenticatorChallenge: Buffer, userName: string): Buffer {
  return sha1(peerChallenge, authenticatorChallenge, Buffer.from(userName, 'utf8')).subarray(0, 8);
}

/** RFC 2759 §8.6 DesEncrypt: a 7-octet key spread over 8 (parity bits ignored). */
function desEncrypt(clear: Buffer, key7: Buffer): Buffer {
  const k = Buffer.alloc(8);
  k[0] = key7[0]!;
  for (let i = 1; i < 7; i++) k[i] = ((key7[i - 1]! << (8 - i)) | (key7[i]! >> i)) & 0xff;
  k[7] = (key7[6]! << 1) & 0xff;
  for (let i = 0; i < 8; i++) k[i] = k[i]! & 0xfe;
  const c = createCipheriv('des-ede3-ecb', Buffer.concat([k, k, k]), null);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(clear), c.final()]);
}

/** RFC 2759 §8.5 ChallengeResponse. */
function challengeResponse(challenge: Buffer, passwordHash: Buffer): Buffer {
  const z = Buffer.concat([passwordHash, Buffer.alloc(5)]);
  return Buffer.concat([desEncrypt(challenge, z.subarray(0, 7)), desEncrypt(challenge, z.subarray(7, 14)), desEncrypt(challenge, z.subarray(14, 21))]);
}

/** RFC 2759 §8.1 GenerateNTResponse. */
export function generateNtResponse(authenticatorChallenge: Buffer, peerChallenge: Buffer, userName: string, password: string): Buffer {
  return challengeResponse(challengeHash(peerChallenge, authenticatorChallenge, userName), ntPasswordHash(password));
}

const MAGIC1 = Buffer.from('Magic server to client signing constant');
const MAGIC2 = Buffer.from('Pad to make it do more than one iteration');

/** RFC 2759 §8.7 GenerateAuthenticatorResponse: "S=<40 hex>". */
export function authenticatorResponse(password: string, ntResponse: Buffer, peerChallenge: Buffer, authenticatorChallenge: Buffer, userName: string): string {
  const hashHash = md4(ntPasswordHash(password));
  const digest = sha1(hashHash, ntResponse, MAGIC1);
  return `S=${sha1(digest, challengeHash(peerChallenge, authenticatorChallenge, userName), MAGIC2).toString('hex').toUpperCase()}`;
}

/** RFC 3079 §3.4-3.5: the 128-bit MPPE start keys, as the server's MS-MPPE-Send-Key and MS-MPPE-Recv-Key. */
export function mppeKeys(password: string, ntResponse: Buffer): { send: Buffer; recv: Buffer } {
  const hashHash = md4(ntPasswordHash(password));
  const master = sha1(hashHash, ntResponse, Buffer.from('This is the MPPE Master Key')).subarray(0, 16);
  const pad1 = Buffer.alloc(40, 0);
  const pad2 = Buffer.alloc(40, 0xf2);
  const clientSend = Buffer.from('On the client side, this is the send key; on the server side, it is the receive key.');
  const clientRecv = Buffer.from('On the client side, this is the receive key; on the server side, it is the send key.');
  const start = (magic: Buffer) => sha1(master, pad1, magic, pad2).subarray(0, 16);
  return { send: start(clientRecv), recv: start(clientSend) };
}

/** The MS-CHAP2-Response value (RFC 2548 §2.3.2): Ident, Flags, Peer-Challenge, Reserved, Response. */
export function msChap2Response(ident: number, peerChallenge: Buffer, ntResponse: Buffer): Buffer {
  return Buffer.concat([Buffer.from([ident, 0]), peerChallenge, Buffer.alloc(8), ntResponse]);
}
