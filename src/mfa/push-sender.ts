// Delivery of push notifications. The message carries only the request id and a short text;
// the app fetches the details over the Mobile App API.
import { readFileSync } from 'node:fs';
import type { Agent } from 'node:https';

export type PushSendResult = { ok: true } | { ok: false; kind: 'stale_token' | 'unavailable'; detail: string };

export interface PushMessage {
  requestId: string;
  text: string;
  ttlMs: number;
}

export interface PushSender {
  send(pushToken: string, message: PushMessage): Promise<PushSendResult>;
}

/** FCM error codes meaning "this token will never work again": the device must register anew. */
// invalid-argument is what FCM answers for a malformed token (our payload is fixed): treat it as stale, not as
// "FCM down", or failmode safe would let that user in on the password alone.
const STALE_CODES = new Set(['messaging/registration-token-not-registered', 'messaging/invalid-registration-token', 'messaging/invalid-argument']);

const SEND_LIMIT_MS = 10_000;

export interface FirebaseOptions {
  serviceAccountFile?: string;
  /** Tests: a credential and an HTTPS agent that lead to a local fake FCM instead of Google. */
  credential?: { getAccessToken(): Promise<{ access_token: string; expires_in: number }> };
  projectId?: string;
  httpAgent?: Agent;
  appName?: string;
}

/** firebase-admin's `send()`, the only place that imports it (loaded on first use: it is large). */
export async function createFirebasePushSender(options: FirebaseOptions): Promise<PushSender> {
  const { initializeApp, cert } = await import('firebase-admin/app');
  const { getMessaging } = await import('firebase-admin/messaging');
  const credential = options.credential ?? cert(JSON.parse(readFileSync(options.serviceAccountFile!, 'utf8')));
  const app = initializeApp(
    { credential: credential as never, projectId: options.projectId, httpAgent: options.httpAgent },
    options.appName ?? `radius-mfa-${process.pid}-${Date.now()}`,
  );
  const messaging = getMessaging(app);
  return {
    send(pushToken, message) {
      // firebase-admin retries 5xx with back-off (up to a minute): never hold a request longer than this.
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<PushSendResult>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, kind: 'unavailable', detail: 'no answer from FCM in time' }), Math.min(message.ttlMs, SEND_LIMIT_MS));
      });
      return Promise.race([sendOnce(pushToken, message), limit]).finally(() => clearTimeout(timer));
    },
  };

  async function sendOnce(pushToken: string, message: PushMessage): Promise<PushSendResult> {
    try {
      await messaging.send({
        token: pushToken,
        data: { request_id: message.requestId, text: message.text },
        android: { priority: 'high', ttl: message.ttlMs },
        apns: { headers: { 'apns-priority': '10', 'apns-push-type': 'alert' }, payload: { aps: { alert: message.text, sound: 'default' } } },
      });
      return { ok: true };
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      return { ok: false, kind: STALE_CODES.has(code) ? 'stale_token' : 'unavailable', detail: code || (err as Error).message };
    }
  }
}
