// The CLI as an admin runs it: a child process of src/cli.ts (through tsx) with --config, in its own cwd.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const TSX = import.meta.resolve('tsx');
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall clock of the whole command, node and tsx start-up included. */
  ms: number;
}

/** Runs `radius-mfa --config CONFIG ...args` in `cwd` (so relative store paths land there), RADIUS_MFA_CONFIG unset. */
export function runCli(config: string, cwd: string, args: string[], input = ''): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const env = { ...process.env };
    delete env.RADIUS_MFA_CONFIG;
    const child = spawn(process.execPath, ['--import', TSX, CLI, '--config', config, ...args], { cwd, env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - start }));
    child.stdin.end(input);
  });
}
