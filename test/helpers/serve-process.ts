// `radius-mfa serve` as a child process on a config file: its JSON log lines (also appended to a file,
// as a service manager would keep them), the ports it bound, and a clean stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string };

export interface ServeProcess {
  child: ChildProcess;
  lines: LogLine[];
  authPort: number;
  metricsPort: number;
  /** The start-up line. */
  listening: LogLine;
  output(): string;
  /** SIGTERM, and waits for the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `node [--import tsx] CLI --config CONFIG serve` and waits for its "listening" line. */
export async function startServe(config: string, opts: { cwd?: string; logFile?: string; command?: string[] } = {}): Promise<ServeProcess> {
  const command = opts.command ?? [process.execPath, '--import', 'tsx', 'src/cli.ts'];
  const child = spawn(command[0]!, [...command.slice(1), '--config', config, 'serve'], {
    cwd: opts.cwd ?? ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RADIUS_MFA_CONFIG: '' },
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines: LogLine[] = [];
  let partial = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    if (opts.logFile) appendFileSync(opts.logFile, chunk);
    partial += chunk;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        lines.push({ msg: `(not JSON) ${line}` });
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const output = () => `stdout:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${stderr}`;
  const deadline = Date.now() + 30_000;
  let listening: LogLine | undefined;
  while (!(listening = lines.find((l) => l.msg === 'listening'))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`serve did not start (exit ${child.exitCode})\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const bound = listening.listen as { role: string; port: number }[];
  return {
    child,
    lines,
    listening,
    authPort: bound.find((b) => b.role === 'auth')?.port ?? 0,
    metricsPort: bound.find((b) => b.role === 'metrics')?.port ?? 0,
    output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
