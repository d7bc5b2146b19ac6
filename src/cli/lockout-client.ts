// The live side of a lockout, for `user show` and `user unlock`: the failure counts and familiar sources
// are in the shared state. With Redis the CLI reads them there; with state.type memory only the running
// server has them, and it is asked on metrics.listen (served to this host only).
import type { Config } from '../config/schema.js';
import { forgetFailures, lockoutView, type LockoutView } from '../flow/lockout.js';
import { resolveEncryptionKey } from '../store/secret-box.js';
import { openState } from '../state/open-state.js';

export type LiveLockout = { kind: 'ok'; view: LockoutView } | { kind: 'unknown'; why: string };

export async function liveLockout(config: Config, username: string): Promise<LiveLockout> {
  const r = await withLive(config, username, async (state) => lockoutView(username, { state }), 'lockout', 'GET');
  return typeof r === 'string' ? { kind: 'unknown', why: r } : { kind: 'ok', view: r as LockoutView };
}

/** Forgets the user's counts; returns what could not be done (undefined when done). */
export async function forgetLive(config: Config, username: string): Promise<string | undefined> {
  const r = await withLive(config, username, async (state) => forgetFailures(username, { state }), 'unlock', 'POST');
  return typeof r === 'string' ? r : undefined;
}

/** Runs `direct` on Redis, or asks the server; a string is why neither could be done. */
async function withLive<T>(config: Config, username: string, direct: (state: Awaited<ReturnType<typeof openState>>) => Promise<T>, path: string, method: string): Promise<T | string> {
  if (config.state.type === 'redis') {
    const state = await openState(config.state, { now: Date.now, sealKey: resolveEncryptionKey(config.store).key });
    try {
      return await direct(state);
    } finally {
      await state.close();
    }
  }
  if (!config.metrics) return 'the counts live in the running server (state.type memory), which is asked on metrics.listen: set metrics.listen to see them';
  const { host, port } = config.metrics.listen;
  const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  try {
    const res = await fetch(`http://${target}:${port}/users/${encodeURIComponent(username)}/${path}`, { method, signal: AbortSignal.timeout(3000) });
    if (!res.ok) return `the server on metrics.listen answered ${res.status}: ${await res.text()}`;
    return (await res.json()) as T;
  } catch (err) {
    return `no server answers on metrics.listen ${host}:${port} (${(err as Error).message}): counts live only in a running server`;
  }
}
