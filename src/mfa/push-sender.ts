// Delivery of push notifications. The message carries only the request id and a short text;
// the app fetches the details over the Mobile App API.
import { readFileSync } from 'node:fs';
import type { Agent } from 'node:https';
import type { Logger } from 'pino';
import { isWebPushToken } from './push-token.js';

/** no_sender: no sender for this kind of token is configured, so the device polls. */
export type PushSendResult = { ok: true } | { ok: false; kind: 'stale_token' | 'unavailable' | 'no_sender'; detail: string };

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

/** One send never holds a request longer than the push lives, nor than 10 s. */
export function sendLimitMs(ttlMs: number): number {
  return Math.min(ttlMs, 10_000);
}

export function withinSendLimit(send: Promise<PushSendResult>, ttlMs: number, service: string): Promise<PushSendResult> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<PushSendResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, kind: 'unavailable', detail: `no answer from ${service} in time` }), sendLimitMs(ttlMs));
  });
  return Promise.race([send, limit]).finally(() => clearTimeout(timer));
}

/**
 * Counts every push handed to a push service and logs every one that was not delivered, with what the
 * service said: the decision's reason (push_unavailable, push_token_stale) tells the VPN user, this line
 * tells the admin why, and the count lets an alert fire before users call.
 */
export function reportingPushSender(sender: PushSender, logger: Logger, onDelivery: (service: 'fcm' | 'web_push', result: 'sent' | 'stale_token' | 'unavailable') => void): PushSender {
  return {
    async send(pushToken, message) {
      const result = await sender.send(pushToken, message);
      const service = isWebPushToken(pushToken) ? 'web_push' : 'fcm';
      if (result.ok) onDelivery(service, 'sent');
      else if (result.kind !== 'no_sender') {
        onDelivery(service, result.kind);
        // push_service, not service: the base logger already binds `service` (ours), and a key given twice makes
        // log pipelines that refuse duplicate keys drop the line.
        logger.warn({ request: message.requestId, push_service: service, kind: result.kind, detail: result.detail }, 'push not delivered');
      }
      return result;
    },
  };
}

/** Sends each token through the sender for its kind: Web Push subscriptions and FCM tokens. */
export function routePushSender(senders: { fcm?: PushSender; webPush?: PushSender }): PushSender {
  return {
    send(pushToken, message) {
      const web = isWebPushToken(pushToken);
      const sender = web ? senders.webPush : senders.fcm;
      if (!sender) return Promise.resolve({ ok: false, kind: 'no_sender', detail: `mobile_app.${web ? 'web_push' : 'firebase'} is not configured` });
      return sender.send(pushToken, message);
    },
  };
}

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
      return withinSendLimit(sendOnce(pushToken, message), message.ttlMs, 'FCM');
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
