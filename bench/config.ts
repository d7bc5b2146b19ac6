// The one config.yaml writer of the benches: our server on loopback, one client "bench", a store in `dir`.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type BenchConfig = {
  authPort: number;
  secret: string;
  firstFactor: 'local' | 'none';
  logLevel: string;
  /** The push bench: default_method push, long push timeout and rate limit, HTTP on this port. */
  push?: { httpPort: number };
};

export function writeBenchConfig(dir: string, c: BenchConfig): string {
  const cfg = join(dir, 'config.yaml');
  const push = c.push
    ? `  push:
    timeout: 10m
    rate_limit:
      max: 1000
      window: 10m
http:
  listen: "127.0.0.1:${c.push.httpPort}"
# first_factor none: a portal would sign anyone in (config/rules.ts refuses it), and the bench needs only the API.
portal:
  enabled: false
`
    : '';
  writeFileSync(
    cfg,
    `# Written by bench/config.ts
listen:
  auth: "127.0.0.1:${c.authPort}"
clients:
  - name: bench
    address: 127.0.0.1
    secret: ${JSON.stringify(c.secret)}
${c.push ? '' : '    require_message_authenticator: true\n'}first_factor:
  type: ${c.firstFactor}
# The default (1000 a second per client) would cap the load generator, which is one NAS.
rate_limits:
  client_per_second: 0
mfa:
  default_method: ${c.push ? 'push' : 'totp'}
  reject_delay: 0
  lockout:
    max_failures: 0
${push}store:
  path: ${JSON.stringify(join(dir, 'bench.db'))}
log:
  level: ${c.logLevel}
`,
  );
  return cfg;
}
