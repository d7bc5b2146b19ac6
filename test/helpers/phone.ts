// A simulated phone: speaks the Mobile App API over real HTTP with its own WebCrypto P-256 key pair,
// exactly as the companion app or a third-party app would.
import { webcrypto } from 'node:crypto';

const { subtle } = webcrypto;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export interface PendingView {
  id: string;
  username: string;
  client: string;
  nas_ip?: string;
  calling_station?: string;
  time: string;
  expires: string;
  pin_required: boolean;
  number?: string;
}

export interface HttpResult<T = unknown> {
  status: number;
  body: T;
}

async function call<T>(method: string, url: string, body?: unknown, token?: string): Promise<HttpResult<T>> {
  const res = await fetch(url, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

export async function newKeyPair(): Promise<CryptoKeyPair> {
  return subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

export async function publicKeyBase64(keys: CryptoKeyPair): Promise<string> {
  return Buffer.from(await subtle.exportKey('spki', keys.publicKey)).toString('base64');
}

export async function sign(keys: CryptoKeyPair, text: string): Promise<string> {
  return Buffer.from(await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, Buffer.from(text, 'utf8'))).toString('base64');
}

export class SimulatedPhone {
  private constructor(
    readonly baseUrl: string,
    readonly keys: CryptoKeyPair,
    readonly deviceId: string,
    readonly token: string,
    readonly activation: Record<string, unknown>,
  ) {}

  /** Activates with a code; throws with the server's error body when refused. */
  static async activate(baseUrl: string, code: string, opts: { pin?: string; pushToken?: string; name?: string } = {}): Promise<SimulatedPhone> {
    const keys = await newKeyPair();
    const r = await call<Record<string, unknown>>('POST', `${baseUrl}/api/v1/activation`, {
      activation_code: code,
      device_name: opts.name ?? 'test phone',
      public_key: await publicKeyBase64(keys),
      ...(opts.pushToken ? { push_token: opts.pushToken } : {}),
      ...(opts.pin ? { pin: opts.pin } : {}),
    });
    if (r.status !== 201) throw new Error(`activation refused: ${r.status} ${JSON.stringify(r.body)}`);
    return new SimulatedPhone(baseUrl, keys, r.body.device_id as string, r.body.device_token as string, r.body);
  }

  pending(): Promise<HttpResult<PendingView[]>> {
    return call('GET', `${this.baseUrl}/api/v1/pending`, undefined, this.token);
  }

  /** Polls /pending (every 10 ms, at most `timeoutMs`) until a request is there. */
  async waitForPending(timeoutMs = 5000): Promise<PendingView> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await this.pending();
      if (r.status !== 200) throw new Error(`pending: ${r.status} ${JSON.stringify(r.body)}`);
      if (r.body[0]) return r.body[0];
      await new Promise((res) => setTimeout(res, 10));
    }
    throw new Error(`no pending request within ${timeoutMs} ms`);
  }

  /** Answers with a signature over "{id}.{decision}" (or over `signText` / with `keys` to test refusals). */
  async answer(id: string, decision: string, opts: { pin?: string; signText?: string; keys?: CryptoKeyPair } = {}): Promise<HttpResult<Record<string, unknown>>> {
    const signature = await sign(opts.keys ?? this.keys, opts.signText ?? `${id}.${decision}`);
    return call('POST', `${this.baseUrl}/api/v1/requests/${encodeURIComponent(id)}/answer`, { decision, signature, ...(opts.pin ? { pin: opts.pin } : {}) }, this.token);
  }

  device(): Promise<HttpResult<Record<string, unknown>>> {
    return call('GET', `${this.baseUrl}/api/v1/device`, undefined, this.token);
  }

  setPushToken(pushToken: string | null): Promise<HttpResult> {
    return call('POST', `${this.baseUrl}/api/v1/push-token`, { push_token: pushToken }, this.token);
  }

  deregister(): Promise<HttpResult> {
    return call('DELETE', `${this.baseUrl}/api/v1/device`, undefined, this.token);
  }
}

export { call as httpCall };
