// `radius-mfa totp ...`: enroll (new secret, otpauth:// URI and QR code) and import (an existing secret).
import { InvalidArgumentError, Option, type Command } from 'commander';
import { chmodSync, writeFileSync } from 'node:fs';
import { secondFactorSettings, startEnrollment } from '../flow/second-factor.js';
import { otpauthUri, type TotpAlgorithm, type TotpEnrollment } from '../mfa/enrollment.js';
import { parseBase32Secret } from '../mfa/totp-secret.js';
import type { Store } from '../store/store.js';
import { CliError, loadConfigOrFail, print, userArg, warn, withStore } from './context.js';

type ConfigPath = (cmd: Command) => string;

export function registerTotpCommands(program: Command, configPath: ConfigPath): void {
  const totp = program.command('totp').description('TOTP enrollment');

  totp
    .command('enroll')
    .description('create a TOTP secret for a user; prints the otpauth:// URI and a QR code to scan')
    .argument('<name>')
    .option('--png <file>', 'also write the QR code as a PNG image (mode 0600: it holds the secret)')
    .option('--force', 'replace an existing enrollment (the old codes stop working)')
    .action(async (name: string, opts: { png?: string; force?: boolean }, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      name = userArg(name, config);
      // An admin's enrollment counts at once (no code is typed back): the same new enrollment as at the other doors.
      const enrollment = startEnrollment(secondFactorSettings(config));
      const { digits, period, algorithm } = enrollment;
      // Loaded here so that other commands do not pay for it at start.
      const { default: QRCode } = await import('qrcode');
      const uri = await otpauthUri(config.mfa.totp.issuer, name, enrollment);
      await withStore(config, async (store) => {
        await requireEnrollable(store, name, opts.force);
        // The image first: a bad path then fails before anything is stored.
        if (opts.png) writePng(opts.png, await QRCode.toBuffer(uri, { type: 'png', margin: 2, scale: 6 }));
        await store.setTotp(name, enrollment);
      });
      print(uri);
      print(await QRCode.toString(uri, { type: 'terminal', small: true }));
      if (opts.png) print(`QR code written to ${opts.png}`);
      print(`${name}: TOTP enrolled (${algorithm}, ${digits} digits, ${period} s); scan the code with an authenticator app`);
    });

  totp
    .command('import')
    .description('store an existing TOTP secret for a user (migration from another system)')
    .argument('<name>')
    .requiredOption('--secret <base32>', 'the secret in base32, as authenticator apps show it')
    .addOption(new Option('--digits <n>', 'code length (default: mfa.totp.digits)').choices(['6', '8']))
    .option('--period <seconds>', 'time step (default: mfa.totp.period)', parsePeriod)
    .addOption(new Option('--algorithm <name>', 'HMAC algorithm (default: mfa.totp.algorithm)').choices(['SHA1', 'SHA256', 'SHA512']))
    .option('--force', 'replace an existing enrollment')
    .action(async (name: string, opts: { secret: string; digits?: '6' | '8'; period?: number; algorithm?: TotpAlgorithm; force?: boolean }, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      name = userArg(name, config);
      const parsed = parseBase32Secret(opts.secret);
      if (!parsed.ok) throw new CliError(`--secret: ${parsed.problem}`, 2);
      if (parsed.warning) warn(`--secret: ${parsed.warning}`);
      const enrollment: TotpEnrollment = {
        secret: parsed.secret,
        algorithm: opts.algorithm ?? config.mfa.totp.algorithm,
        digits: opts.digits ? (Number(opts.digits) as 6 | 8) : config.mfa.totp.digits,
        period: opts.period ?? config.mfa.totp.period,
      };
      await withStore(config, async (store) => {
        await requireEnrollable(store, name, opts.force);
        await store.setTotp(name, enrollment);
      });
      print(`${name}: TOTP secret imported (${enrollment.algorithm}, ${enrollment.digits} digits, ${enrollment.period} s)`);
    });
}

async function requireEnrollable(store: Store, name: string, force: boolean | undefined): Promise<void> {
  const user = await store.getUser(name);
  if (!user) throw new CliError(`no user ${name}; add it first: radius-mfa user add ${name}`);
  if (user.totp && !force) throw new CliError(`${name} already has a TOTP enrollment; add --force to replace it (the old codes stop working)`);
}

function writePng(file: string, png: Buffer): void {
  try {
    writeFileSync(file, png, { mode: 0o600 });
    chmodSync(file, 0o600); // mode above only applies to a new file
  } catch (err) {
    throw new CliError(`cannot write ${file}: ${(err as Error).message}`);
  }
}

function parsePeriod(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 10 || n > 300) throw new InvalidArgumentError('must be a whole number of seconds from 10 to 300');
  return n;
}
