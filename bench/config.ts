// The one config.yaml writer of the benches: our server on loopback, one client "bench", a store in `dir`.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type BenchConfig = {
  authPort: number;
  secret: string;
  firstFactor: 'local' | 'none';
  /** info = the default: one audit line per decision; warn = none (FreeRADIUS `auth = no`). */
  logLevel: 'info' | 'warn';
  /**
   * Off what FreeRADIUS does not do and what would change the work per request: reject delay (replays are
   * rejected), lockout (replays would lock users), the per-NAS rate limit (the generator is one NAS; the
   * check still runs). Without it the defaults apply, as an admin runs it (the spray bench).
   */
  throughput: boolean;
  /** The push bench: default_method push, long push timeout and rate limit, HTTP on this port. */
  push?: { httpPort: number };
  /** Store postgres + state redis (docs/ha.md), sealed with the SQLite store's key file (copied from it). */
  shared?: { postgresUrl: string; redisUrl: string };
};

export function writeBenchConfig(dir: string, c: BenchConfig, name = 'config.yaml'): string {
  const file = join(dir, name);
  const lines = [
    '# Written by bench/config.ts',
    `listen: {auth: "127.0.0.1:${c.authPort}"}`,
    `clients: [{name: bench, address: 127.0.0.1, secret: ${JSON.stringify(c.secret)}}]`,
    `first_factor: {type: ${c.firstFactor}}`,
    'mfa:',
    `  default_method: ${c.push ? 'push' : 'totp'}`,
    ...(c.throughput ? ['  reject_delay: 0', '  lockout: {max_failures: 0}'] : []),
    ...(c.push ? ['  push: {timeout: 10m, rate_limit: {max: 1000, window: 10m}}'] : []),
    ...(c.throughput ? ['rate_limits: {client_per_second: 1000000}'] : []),
    ...(c.push
      ? [`http: {listen: "127.0.0.1:${c.push.httpPort}"}`,
          '# first_factor none: a portal would sign anyone in (config/rules.ts refuses it), and the bench needs only the API.',
          'portal: {enabled: false}']
      : []),
    ...(c.shared
      ? [`store: {type: postgres, url: ${JSON.stringify(c.shared.postgresUrl)}, pool: 10, key_file: ${JSON.stringify(join(dir, 'bench.db.key'))}}`,
          `state: {type: redis, url: ${JSON.stringify(c.shared.redisUrl)}}`]
      : [`store: {path: ${JSON.stringify(join(dir, 'bench.db'))}}`]),
    `log: {level: ${c.logLevel}}`,
  ];
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}
