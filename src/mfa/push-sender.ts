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
const STALE_CODES = new Set(['messaging/registration-token-not-registered', 'messaging/invalid-registration-token']);

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
    async send(pushToken, message) {
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
    },
  };
}
