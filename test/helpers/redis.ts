// The private Redis is scripts/engines/redis.ts (the bench starts it too). What only tests need (TLS,
// Sentinel) is built here on its options.
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { startRedis, type RedisInstance } from '../../scripts/engines/redis.js';

export { startRedis, type RedisInstance };

/** A Redis that speaks TLS only (no plain port) with this certificate; url is rediss://127.0.0.1:port. */
export async function startTlsRedis(tls: { cert: string; key: string; ca: string }): Promise<RedisInstance> {
  const ca = readFileSync(tls.ca);
  const server = await startRedis({
    args: (port) => ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no'],
    connect: (port) => connect({ host: '127.0.0.1', port, ca }),
  });
  return { ...server, url: server.url.replace(/^redis:/, 'rediss:') };
}

/** One Sentinel monitoring the master group `name` at 127.0.0.1:masterPort (quorum 1: it alone decides). */
export function startSentinel(name: string, masterPort: number): Promise<RedisInstance> {
  return startRedis({
    config: `sentinel resolve-hostnames no\nsentinel monitor ${name} 127.0.0.1 ${masterPort} 1\n`,
    args: () => ['--sentinel'],
  });
}
