// Answers from a phone are signed with its ECDSA P-256 key (WebCrypto: SPKI export, IEEE P1363 signatures).
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/** Parses a base64 SPKI DER public key; undefined unless it is an EC P-256 key. */
export function parseDevicePublicKey(base64: string): { der: Buffer; key: KeyObject } | undefined {
  try {
    const der = Buffer.from(base64, 'base64');
    const key = createPublicKey({ key: der, format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return undefined;
    return { der, key };
  } catch {
    return undefined;
  }
}

/** What the device signs for an answer: the UTF-8 string "{id}.{decision}". */
export function answerSigningInput(requestId: string, decision: string): Buffer {
  return Buffer.from(`${requestId}.${decision}`, 'utf8');
}

/** Decoded device keys, by their DER bytes: decoding costs about a third of an answer's CPU. */
const keys = new LRUCache<string, KeyObject>({ max: 10_000 });

function publicKeyOf(der: Buffer): KeyObject {
  const id = der.toString('base64');
  let key = keys.get(id);
  if (!key) keys.set(id, (key = createPublicKey({ key: der, format: 'der', type: 'spki' })));
  return key;
}

/** Verifies a base64 (or base64url) P1363 signature over `data`; false for any malformed input. */
export function verifyDeviceSignature(publicKeyDer: Buffer, data: Buffer, signatureBase64: string): boolean {
  try {
    const signature = Buffer.from(signatureBase64, 'base64');
    if (signature.length !== 64) return false;
    return verify('sha256', data, { key: publicKeyOf(publicKeyDer), dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}
