// The running server's lockout counts, for `radius-mfa user show` and `user unlock`: with state.type
// memory they live only in the server. Served beside /metrics, to loopback callers only (the CLI on the
// same host): a scrape from elsewhere must not read or clear anyone's failures.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LockoutView } from '../flow/lockout.js';

export interface LockoutAdmin {
  view(username: string): Promise<LockoutView>;
  forget(username: string): Promise<void>;
}

const ROUTE = /^\/users\/([^/]+)\/(lockout|unlock)$/;

/** Handles GET /users/NAME/lockout and POST /users/NAME/unlock; false when the request is not one of them. */
export function serveLockoutAdmin(req: IncomingMessage, res: ServerResponse, admin: LockoutAdmin): boolean {
  const m = ROUTE.exec(req.url ?? '');
  if (!m) return false;
  const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(body)}\n`);
  if (!isLoopback(req.socket.remoteAddress)) {
    json(403, { error: 'only from this host (the radius-mfa CLI)' });
    return true;
  }
  const username = decodeURIComponent(m[1]!);
  const act = m[2] === 'lockout' && req.method === 'GET' ? admin.view(username) : m[2] === 'unlock' && req.method === 'POST' ? admin.forget(username).then(() => ({ ok: true })) : undefined;
  if (!act) {
    json(405, { error: 'GET /users/NAME/lockout or POST /users/NAME/unlock' });
    return true;
  }
  act.then(
    (body) => json(200, body),
    (err: Error) => json(500, { error: err.message }),
  );
  return true;
}

function isLoopback(address: string | undefined): boolean {
  return address === '::1' || address?.startsWith('127.') === true || address?.startsWith('::ffff:127.') === true;
}
