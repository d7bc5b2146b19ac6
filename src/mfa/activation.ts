// One-time activation codes that bind a phone to a user (the seed's Mobile App activation).
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { hostname } from 'node:os';

/** What an activation needs of the config (mobile_app, http): the config object itself fits. */
export interface ActivationSettings {
  mobile_app: { activation_ttl: number; account_name: string; public_url?: string | undefined };
  http?: { listen: { host: string; port: number }; tls?: unknown } | undefined;
}

/** Where activation codes are kept (the store's devices). */
export interface ActivationCodes {
  devices: { addActivation(username: string, codeHash: Buffer, expiresAt: number, withTotp: boolean): Promise<void> };
}

export interface Activation {
  activation_code: string;
  /** The service URL the app talks to. */
  url: string;
  /** ISO time after which the code is refused. */
  expires: string;
  account_name: string;
  /** What the QR code holds: opening it on a phone starts the companion app's activation. */
  qr_payload: string;
}

/** Codes are 12 digits, shown in groups of four; spaces and dashes are ignored when typed back. */
export function normalizeActivationCode(code: string): string {
  return code.replace(/[\s-]/g, '');
}

export function hashSecretToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function publicUrlOf(config: ActivationSettings): string {
  if (config.mobile_app.public_url) return config.mobile_app.public_url.replace(/\/+$/, '');
  const http = config.http;
  if (!http) return 'http://localhost';
  const host = http.listen.host === '0.0.0.0' || http.listen.host === '::' ? hostname() : http.listen.host;
  return `${http.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${http.listen.port}`;
}

/** Creates and stores (hashed) a one-time activation code for a user. */
export async function createActivation(store: ActivationCodes, config: ActivationSettings, username: string, now: number, withTotp = false): Promise<Activation> {
  const digits = Array.from({ length: 3 }, () => String(randomInt(0, 10_000)).padStart(4, '0'));
  const code = digits.join('');
  const expiresAt = now + config.mobile_app.activation_ttl;
  await store.devices.addActivation(username, hashSecretToken(code), expiresAt, withTotp);
  const url = publicUrlOf(config);
  const account = config.mobile_app.account_name;
  return {
    activation_code: digits.join('-'),
    url,
    expires: new Date(expiresAt).toISOString(),
    account_name: account,
    qr_payload: `${url}/app/?activate=${code}&account=${encodeURIComponent(account)}`,
  };
}

/** A new device's bearer token; only its SHA-256 is stored. */
export function newDeviceToken(): string {
  return randomBytes(32).toString('base64url');
}
