// RFC 8292 VAPID: the server's own P-256 key pair. Browsers subscribe with its public half
// (applicationServerKey), and push services accept a push only when it is signed with the private half.
import { createECDH } from 'node:crypto';
import { base64urlBytes, isP256Point } from './push-token.js';

const CURVE = 'prime256v1';

/** VAPID keys are base64url without padding: the web-push library refuses "=". */
const unpadded = (text: string) => (text.includes('=') ? undefined : base64urlBytes(text));

/** The uncompressed point (65 bytes, 0x04 first), base64url: what PushManager.subscribe() takes. */
export function isVapidPublicKey(text: string): boolean {
  return !text.includes('=') && isP256Point(text);
}

/** A 32-byte P-256 scalar, base64url. */
export function isVapidPrivateKey(text: string): boolean {
  return unpadded(text)?.length === 32 && vapidPublicKeyOf(text) !== undefined;
}

/** The public key that belongs to a private key; undefined when it is no valid P-256 scalar. */
export function vapidPublicKeyOf(privateKey: string): string | undefined {
  const bytes = unpadded(privateKey);
  if (!bytes) return undefined;
  try {
    const ecdh = createECDH(CURVE);
    ecdh.setPrivateKey(bytes);
    return ecdh.getPublicKey().toString('base64url');
  } catch {
    return undefined;
  }
}

/** RFC 8292 §2.1: the contact a push service can reach the operator at, a mailto: or https: URI. */
export function isVapidSubject(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'mailto:' && url.pathname.includes('@')) || (url.protocol === 'https:' && url.hostname !== '');
  } catch {
    return false;
  }
}
