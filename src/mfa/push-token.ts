// A device's push registration, as the Mobile App API stores it in push_token: an FCM registration
// token, or "webpush:" followed by the browser's PushSubscription JSON (what subscription.toJSON() gives).
import { createPublicKey } from 'node:crypto';
import { parse as parseLegacyUrl } from 'node:url';

export const WEB_PUSH_PREFIX = 'webpush:';

/**
 * The push services of the major browsers (Chrome and Chromium-based Edge, Firefox, legacy Edge, Safari).
 * A subscription's endpoint must be on one of them: the server POSTs to it, so an activated device could
 * otherwise make it send requests to any host, inside the network included.
 */
export const DEFAULT_PUSH_SERVICES: readonly string[] = ['fcm.googleapis.com', 'updates.push.services.mozilla.com', 'notify.windows.com', 'push.apple.com'];

export interface WebPushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export type PushToken = { kind: 'fcm'; token: string } | { kind: 'web_push'; subscription: WebPushSubscription };

export function isWebPushToken(text: string): boolean {
  return text.startsWith(WEB_PUSH_PREFIX);
}

/**
 * undefined for a "webpush:" token that no push could ever be sent to, or whose endpoint is not on
 * one of `pushServices` (a host name, or a domain whose subdomains count too). A subscription's
 * endpoint comes back normalized (see pushServiceEndpoint): send to that one only.
 */
export function parsePushToken(text: string, pushServices: readonly string[] = DEFAULT_PUSH_SERVICES): PushToken | undefined {
  if (!isWebPushToken(text)) return { kind: 'fcm', token: text };
  let json: unknown;
  try {
    json = JSON.parse(text.slice(WEB_PUSH_PREFIX.length));
  } catch {
    return undefined;
  }
  const { endpoint, keys } = (json ?? {}) as { endpoint?: unknown; keys?: { p256dh?: unknown; auth?: unknown } };
  const p256dh = keys?.p256dh;
  const auth = keys?.auth;
  if (typeof endpoint !== 'string' || typeof p256dh !== 'string' || typeof auth !== 'string') return undefined;
  const normalized = pushServiceEndpoint(endpoint, pushServices);
  if (!normalized) return undefined;
  // RFC 8291 §3: the subscriber's ECDH key is a P-256 point and its authentication secret 16 octets.
  if (!isP256Point(p256dh) || base64urlBytes(auth)?.length !== 16) return undefined;
  return { kind: 'web_push', subscription: { endpoint: normalized, keys: { p256dh, auth } } };
}

/**
 * The push_token to store for `text`: an FCM token as given, a subscription rebuilt from what
 * parsePushToken checked (normalized endpoint, keys), so that nothing unchecked is ever kept.
 * undefined when parsePushToken refuses it.
 */
export function normalizePushToken(text: string, pushServices?: readonly string[]): string | undefined {
  const token = parsePushToken(text, pushServices);
  if (!token) return undefined;
  return token.kind === 'fcm' ? token.token : WEB_PUSH_PREFIX + JSON.stringify(token.subscription);
}

// A push service's host is a DNS name (or, in tests, an IPv4 address): letters, digits, hyphens and dots.
const DNS_HOST = /^[a-z0-9-]+(\.[a-z0-9-]+)*$/;

/**
 * The endpoint as WHATWG URL normalizes it (`href`), or undefined when it is not an https URL on one of
 * `pushServices`, or when web-push would connect elsewhere than the allowlist checked. web-push (3.6)
 * takes hostname, port and path from the legacy url.parse, which reads some URLs differently: for
 * "https://127.0.0.1;.fcm.googleapis.com/x" WHATWG sees a host under fcm.googleapis.com, url.parse
 * sees 127.0.0.1. So the host must be a plain DNS name, and url.parse must read the normalized URL
 * exactly as WHATWG does; only that normalized URL is stored and sent.
 */
export function pushServiceEndpoint(text: string, pushServices: readonly string[]): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  // Push services are HTTPS only (RFC 8030 §8), and web-push sends nothing else. No endpoint carries credentials.
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '') return undefined;
  const host = url.hostname;
  if (!DNS_HOST.test(host)) return undefined;
  const legacy = parseLegacyUrl(url.href);
  const sameTarget =
    legacy.protocol === 'https:' && legacy.auth === null && legacy.hostname === host && (legacy.port ?? '') === url.port && legacy.path === url.pathname + url.search;
  if (!sameTarget) return undefined;
  const allowed = pushServices.some((s) => host === s.toLowerCase() || host.endsWith(`.${s.toLowerCase()}`));
  return allowed ? url.href : undefined;
}

export function base64urlBytes(text: string): Buffer | undefined {
  return /^[A-Za-z0-9_-]+={0,2}$/.test(text) ? Buffer.from(text, 'base64url') : undefined;
}

/** An uncompressed P-256 point (65 octets, 0x04 first) on the curve, base64url. */
export function isP256Point(text: string): boolean {
  const bytes = base64urlBytes(text);
  if (bytes?.length !== 65 || bytes[0] !== 0x04) return false;
  try {
    // Refuses a point that is not on the curve.
    createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: bytes.subarray(1, 33).toString('base64url'), y: bytes.subarray(33).toString('base64url') }, format: 'jwk' });
    return true;
  } catch {
    return false;
  }
}
