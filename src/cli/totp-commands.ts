// `radius-mfa totp ...`: enroll (new secret, otpauth:// URI and QR code) and import (an existing secret).
import { InvalidArgumentError, Option, type Command } from 'commander';
import { chmodSync, writeFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import type { Store, TotpAlgorithm, TotpEnrollment } from '../store/store.js';
import { CliError, loadConfigOrFail, print, userArg, warn, withStore } from './context.js';
import { encodeBase32, parseBase32Secret } from './totp-secret.js';

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
      const { digits, period, algorithm } = config.mfa.totp;
      // Loaded here so that other commands do not pay for them at start.
      const [{ generateSecret }, { default: QRCode }] = await Promise.all([import('otplib'), import('qrcode')]);
      const secret = generateSecret();
      const uri = await otpauthUri(config, name, secret, { algorithm, digits, period });
      await withStore(config, async (store) => {
        await requireEnrollable(store, name, opts.force);
        // The image first: a bad path then fails before anything is stored.
        if (opts.png) writePng(opts.png, await QRCode.toBuffer(uri, { type: 'png', margin: 2, scale: 6 }));
        const decoded = parseBase32Secret(secret);
        if (!decoded.ok) throw new Error(`generated secret did not decode: ${decoded.problem}`);
        await store.setTotp(name, { secret: decoded.secret, algorithm, digits, period });
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

/** The URI authenticator apps scan; label "issuer:username" (Key Uri Format). */
export async function otpauthUri(config: Config, username: string, secret: string | Buffer, t: Omit<TotpEnrollment, 'secret'>): Promise<string> {
  const { generateURI } = await import('otplib');
  return generateURI({
    issuer: config.mfa.totp.issuer,
    label: username,
    secret: typeof secret === 'string' ? secret : encodeBase32(secret),
    algorithm: t.algorithm.toLowerCase() as 'sha1' | 'sha256' | 'sha512',
    digits: t.digits,
    period: t.period,
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
