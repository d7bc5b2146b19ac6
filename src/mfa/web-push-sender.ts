// Web Push (RFC 8030) to the push service behind a browser's subscription: the web-push library
// encrypts the payload for the subscription (RFC 8291, aes128gcm) and signs the request with our
// VAPID key (RFC 8292). The only file that imports it, on the first push (start-up time).
import type { Agent } from 'node:https';
import { sendLimitMs, withinSendLimit, type PushMessage, type PushSender, type PushSendResult } from './push-sender.js';
import { parsePushToken, type WebPushSubscription } from './push-token.js';

/** mobile_app.web_push: the VAPID key pair, the operator's contact, the push services a subscription may name. */
export interface WebPushSettings {
  vapid_public_key: string;
  vapid_private_key: string;
  subject: string;
  push_services: readonly string[];
}

export interface WebPushOptions {
  /** Tests: an HTTPS agent that trusts a local fake push service. */
  agent?: Agent;
}

export function createWebPushSender(settings: WebPushSettings, options: WebPushOptions = {}): PushSender {
  const vapidDetails = { subject: settings.subject, publicKey: settings.vapid_public_key, privateKey: settings.vapid_private_key };
  return {
    send(pushToken, message) {
      const token = parsePushToken(pushToken, settings.push_services);
      // The API refuses malformed subscriptions and other endpoints; one stored before push_services changed, or before
      // endpoints were normalized, is checked again here, and only its normalized endpoint reaches web-push.
      if (token?.kind !== 'web_push') return Promise.resolve({ ok: false, kind: 'stale_token', detail: 'not a valid web push subscription' });
      return withinSendLimit(sendOnce(token.subscription, message), message.ttlMs, 'the push service');
    },
  };

  async function sendOnce(subscription: WebPushSubscription, message: PushMessage): Promise<PushSendResult> {
    const webpush = (await import('web-push')).default;
    try {
      await webpush.sendNotification(subscription, JSON.stringify({ request_id: message.requestId, text: message.text }), {
        vapidDetails,
        contentEncoding: 'aes128gcm',
        // RFC 8030 §5.2: a push that cannot be delivered while the request waits is useless; §5.3: wake the phone.
        TTL: Math.floor(message.ttlMs / 1000),
        urgency: 'high',
        // Frees the socket of a push service that stopped answering (withinSendLimit has already given up).
        timeout: sendLimitMs(message.ttlMs),
        ...(options.agent ? { agent: options.agent } : {}),
      });
      return { ok: true };
    } catch (err) {
      if (err instanceof webpush.WebPushError) {
        // RFC 8030 §7.3: 404 for an expired subscription; push services answer 410 for one the browser dropped.
        // Either way it never works again: the app must subscribe anew.
        const gone = err.statusCode === 404 || err.statusCode === 410;
        return { ok: false, kind: gone ? 'stale_token' : 'unavailable', detail: `push service answered ${err.statusCode}` };
      }
      return { ok: false, kind: 'unavailable', detail: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
    }
  }
}
