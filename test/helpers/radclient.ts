// The real FreeRADIUS radclient, run once per request: what a NAS admin would use to test us.
import { execFile } from 'node:child_process';

export const RADCLIENT = process.env.RADCLIENT ?? '/usr/bin/radclient';

export type ReplyCode = 'Access-Accept' | 'Access-Reject' | 'Access-Challenge' | 'Accounting-Response' | 'timeout';

export interface RadclientResult {
  code: ReplyCode;
  /** Reply attributes by name, values as radclient prints them (strings unquoted, octets as 0x...). In packet order. */
  attributes: Record<string, string[]>;
  /** Reply attribute names in the order radclient printed them. */
  order: string[];
  stdout: string;
  stderr: string;
  exitCode: number;
  /** Wall time from spawn to exit. */
  ms: number;
}

export type AttributeInput = Record<string, string | number | readonly (string | number)[]>;

export interface RadclientOptions {
  port: number;
  secret: string;
  host?: string;
  type?: 'auth' | 'acct' | 'status';
  /** Seconds before radclient gives up on (or retransmits) a request; may be fractional. Default 1. */
  timeout?: number;
  /** Transmissions in all (radclient -r). Default 1. */
  tries?: number;
  /** Add `Message-Authenticator = 0x00` so radclient signs the request (default true). */
  messageAuthenticator?: boolean;
  ipv6?: boolean;
}

/** Renders one radclient input value: octets (0x..) and numbers bare, everything else a quoted string. */
function renderValue(v: string | number): string {
  if (typeof v === 'number') return String(v);
  if (/^0x[0-9a-fA-F]*$/.test(v)) return v;
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderInput(attributes: AttributeInput, messageAuthenticator = true): string {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(attributes)) {
    const values = Array.isArray(value) ? value : [value as string | number];
    for (const v of values) lines.push(`${name} = ${renderValue(v)}`);
  }
  if (messageAuthenticator) lines.push('Message-Authenticator = 0x00');
  return `${lines.join('\n')}\n`;
}

const CODES: readonly ReplyCode[] = ['Access-Accept', 'Access-Reject', 'Access-Challenge', 'Accounting-Response'];

/** Parses `radclient -x` output: the `Received <code> Id N ...` line and the tab-indented attributes after it. */
export function parseRadclientOutput(stdout: string): Pick<RadclientResult, 'code' | 'attributes' | 'order'> {
  const lines = stdout.split('\n');
  const at = lines.findIndex((l) => l.startsWith('Received '));
  if (at < 0) return { code: 'timeout', attributes: {}, order: [] };
  const name = /^Received (\S+) Id /.exec(lines[at]!)?.[1];
  const code = CODES.find((c) => c === name);
  if (!code) throw new Error(`radclient received an unexpected packet: ${lines[at]}`);
  const attributes: Record<string, string[]> = {};
  const order: string[] = [];
  for (let i = at + 1; i < lines.length; i++) {
    const m = /^\t(\S+) = (.*)$/.exec(lines[i]!);
    if (!m) break;
    const [, attr, raw] = m as unknown as [string, string, string];
    const value = raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1).replace(/\\(["\\])/g, '$1') : raw;
    (attributes[attr] ??= []).push(value);
    order.push(attr);
  }
  return { code, attributes, order };
}

/** Sends one request with the real radclient (`-x -r <tries> -t <timeout>`, input on stdin) and parses the reply. */
export function radclient(attributes: AttributeInput, opts: RadclientOptions): Promise<RadclientResult> {
  const host = opts.host ?? '127.0.0.1';
  const target = host.includes(':') ? `[${host}]:${opts.port}` : `${host}:${opts.port}`;
  const args = ['-x', '-r', String(opts.tries ?? 1), '-t', String(opts.timeout ?? 1)];
  if (opts.ipv6) args.push('-6');
  args.push(target, opts.type ?? 'auth', opts.secret);
  const input = renderInput(attributes, opts.messageAuthenticator ?? true);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    // The kill timeout bounds a hung radclient: its own timeout times tries, plus start-up slack.
    const limit = Math.ceil((opts.timeout ?? 1) * (opts.tries ?? 1) * 1000) + 5000;
    const child = execFile(RADCLIENT, args, { timeout: limit, encoding: 'utf8' }, (err, stdout, stderr) => {
      const ms = performance.now() - started;
      if (err && typeof err.code !== 'number') {
        reject(new Error(`radclient failed to run (${err.message}); stderr: ${stderr}`));
        return;
      }
      try {
        resolve({ ...parseRadclientOutput(stdout), stdout, stderr, exitCode: typeof err?.code === 'number' ? err.code : 0, ms });
      } catch (e) {
        reject(e);
      }
    });
    child.stdin!.end(input);
  });
}
