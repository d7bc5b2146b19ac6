// Settings that load but deserve a warning: each says what to change.
import { holdBudgetMs, type Config } from './schema.js';
import type { Segment } from './yaml-position.js';

/** Shorter shared secrets get a warning (RFC 2865 §3 asks for at least 16 octets, BlastRADIUS for random ones). */
const MIN_SECRET_LENGTH = 16;

export function configWarnings(config: Config): { path: Segment[]; message: string }[] {
  const out: { path: Segment[]; message: string }[] = [];
  config.clients.forEach((client, i) => {
    const name = JSON.stringify(client.name);
    if (!client.require_message_authenticator) {
      out.push({
        path: ['clients', i, 'require_message_authenticator'],
        message: `client ${name} accepts Access-Requests without Message-Authenticator, which leaves it open to BlastRADIUS (CVE-2024-3596); set it to true once the appliance sends Message-Authenticator`,
      });
    }
    if (client.secret.length < MIN_SECRET_LENGTH) {
      out.push({
        path: ['clients', i, 'secret'],
        message: `client ${name} has a shared secret shorter than ${MIN_SECRET_LENGTH} characters; use a long random one, e.g. from: openssl rand -base64 24`,
      });
    }
    const budget = holdBudgetMs(client.nas_timeout, client.nas_retries);
    if (config.mfa.push.timeout > budget) {
      out.push({
        path: ['clients', i, 'nas_timeout'],
        message: `client ${name} gives up after ${(budget / 1000).toFixed(1)} s (nas_timeout x ${client.nas_retries + 1} tries, less 1 s), shorter than mfa.push.timeout ${config.mfa.push.timeout / 1000} s: push users of this client get the "approve on your phone, then press Enter" challenge instead of a held request; raise the appliance's RADIUS timeout to hold pushes`,
      });
    }
  });
  return out;
}
