// `radius-mfa user ...`: add, list, show, set-method, remove, unlock, import.
import { Argument, Option, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import { hashPassword } from '../auth/password-hash.js';
import { METHODS, type Config, type Method } from '../config/schema.js';
import type { MethodSource, Policy } from '../flow/policy.js';
import type { UserRecord } from '../store/store.js';
import { CliError, loadConfigOrFail, print, userArg, warn, withStore } from './context.js';
import { usernameRules } from '../flow/username.js';
import { forgetLive, liveLockout } from './lockout-client.js';
import { planUserImport } from './user-import.js';

type ConfigPath = (cmd: Command) => string;

export function registerUserCommands(program: Command, configPath: ConfigPath): void {
  const user = program.command('user').description('manage local users and their second factor');

  user
    .command('add')
    .description('add a user (without --password-stdin the user has no local password: first_factor none or a directory)')
    .argument('<name>')
    .option('--password-stdin', 'read the password from standard input (one trailing newline is removed)')
    .addOption(new Option('--method <method>', 'the user\'s own method (default: groups / mfa.default_method)').choices(METHODS))
    .action(async (name: string, opts: { passwordStdin?: boolean; method?: Method }, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      name = userArg(name, config);
      const params = config.first_factor.type === 'local' ? config.first_factor.password_hash : undefined;
      const passwordHash = opts.passwordStdin ? await hashPassword(await readPasswordFromStdin(), params) : null;
      await withStore(config, (store) => store.addUser({ username: name, method: opts.method ?? null, passwordHash }));
      print(`added user ${name} (method: ${opts.method ?? 'default'}, local password: ${passwordHash ? 'yes' : 'no'})`);
    });

  user
    .command('list')
    .description('list users')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      const users = await withStore(config, (store) => store.listUsers());
      const policy = await loadPolicy(config);
      const views = users.map((u) => describeUser(u, policy, Date.now()));
      if (opts.json) return print(JSON.stringify(views, null, 2));
      if (views.length === 0) return print('no users; add one with: radius-mfa user add NAME');
      print(
        formatTable(
          ['USERNAME', 'METHOD', 'SOURCE', 'PASSWORD', 'TOTP', 'LOCKED UNTIL'],
          views.map((v) => [
            v.username,
            v.method,
            v.method_source,
            v.has_password ? 'yes' : 'no',
            v.totp ? `${v.totp.algorithm}/${v.totp.digits}/${v.totp.period}s` : '-',
            v.locked_until ?? '-',
          ]),
        ),
      );
    });

  user
    .command('show')
    .description('show one user (never the TOTP secret)')
    .argument('<name>')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      name = userArg(name, config);
      const record = await withStore(config, async (store) => store.getUser(name));
      if (!record) throw noUser(name);
      const v = describeUser(record, await loadPolicy(config), Date.now());
      const live = await liveLockout(config, name);
      if (opts.json) return print(JSON.stringify({ ...v, lockout: live.kind === 'ok' ? live.view : { unknown: live.why } }, null, 2));
      const when = (ms: number) => new Date(ms).toISOString();
      const rows: [string, string][] = [
        ['username', v.username],
        ['method', `${v.method} (${SOURCE_TEXT[v.method_source]})`],
        ['password', v.has_password ? 'yes (local argon2 hash)' : 'no local password'],
        ['totp', v.totp ? `enrolled (${v.totp.algorithm}, ${v.totp.digits} digits, ${v.totp.period} s)` : 'not enrolled'],
        ['locked', v.locked_until ? `until ${v.locked_until}${v.lock_scope === 'unfamiliar' ? ', from sources the user never signed in from' : ''}${v.lock_reason ? ` (${v.lock_reason})` : ''}` : 'no'],
        ['created', v.created_at],
      ];
      if (live.kind === 'unknown') rows.push(['failures', `not known here: ${live.why}`]);
      else {
        const { failures, familiar } = live.view;
        rows.push(['failures', failures.length ? failures.map((f) => `${f.count} ${f.source === null ? 'from strangers' : `at ${f.source}`} (until ${when(f.until)})`).join('; ') : 'none']);
        rows.push(['familiar', familiar.length ? familiar.map((f) => `${f.source} (until ${when(f.until)})`).join('; ') : 'none yet (sources the user signs in from become familiar)']);
      }
      print(rows.map(([k, val]) => `${`${k}:`.padEnd(10)} ${val}`).join('\n'));
    });

  user
    .command('set-method')
    .description('set the user\'s own method; "default" hands it back to groups / mfa.default_method')
    .argument('<name>')
    .addArgument(new Argument('<method>').choices([...METHODS, 'default']))
    .action(async (name: string, method: Method | 'default', _opts: unknown, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      name = userArg(name, config);
      await withStore(config, (store) => store.setMethod(name, method === 'default' ? null : method));
      print(`${name}: method ${method}`);
    });

  user
    .command('remove')
    .description('remove a user and their TOTP enrollment')
    .argument('<name>')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      name = userArg(name, config);
      if (!(await withStore(config, (store) => store.removeUser(name)))) throw noUser(name);
      print(`removed user ${name}`);
    });

  user
    .command('unlock')
    .description('end a lockout after too many failures')
    .argument('<name>')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      name = userArg(name, config);
      const wasLocked = await withStore(config, (store) => store.unlockUser(name));
      // The failure counts too, or the next failure would lock again at once.
      const notForgotten = await forgetLive(config, name);
      print(wasLocked ? `unlocked ${name}` : `${name} was not locked`);
      if (notForgotten) warn(`failure counts not cleared: ${notForgotten}`);
    });

  user
    .command('reset-pin')
    .description("clear the user's push-approval PIN (forgotten PIN); the next activation or the portal sets a new one")
    .argument('<name>')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      name = userArg(name, config);
      await withStore(config, async (store) => {
        if (!(await store.getUser(name))) throw noUser(name);
        await store.setPinHash(name, null);
      });
      print(`${name}: PIN cleared; the user sets a new one in the portal or at the next app activation`);
    });

  user
    .command('import')
    .description('add users from a CSV file: username,method,totp_secret,password_hash (all rows or none)')
    .argument('<file>')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
      }
      const imported = await withStore(config, async (store) => {
        const existing = new Set((await store.listUsers()).map((u) => u.username));
        const plan = planUserImport(file, text, config.mfa.totp, existing, usernameRules(config.usernames.realms));
        for (const w of plan.warnings) warn(w);
        if (plan.problems.length > 0) {
          const shown = plan.problems.slice(0, 100);
          if (plan.problems.length > shown.length) shown.push(`... and ${plan.problems.length - shown.length} more`);
          throw new CliError(`${shown.join('\n')}\nnothing imported: fix the ${plan.problems.length} problem(s) above and run the import again`);
        }
        await store.addUsers(plan.users);
        return plan.users;
      });
      const withTotp = imported.filter((u) => u.totp).length;
      const withPassword = imported.filter((u) => u.passwordHash).length;
      print(`imported ${imported.length} users (${withTotp} with TOTP, ${withPassword} with a password hash)`);
    });
}

const SOURCE_TEXT: Record<MethodSource, string> = {
  user: 'set on the user',
  config_user: 'config users:',
  group: 'config groups:',
  default: 'mfa.default_method',
};

interface UserView {
  username: string;
  method: Method;
  method_source: MethodSource;
  has_password: boolean;
  totp: { algorithm: string; digits: number; period: number } | null;
  locked_until: string | null;
  /** all: everywhere (fraud, an admin); unfamiliar: only from sources the user never signed in from. */
  lock_scope: 'all' | 'unfamiliar' | null;
  lock_reason: string | null;
  created_at: string;
}

function describeUser(u: UserRecord, policy: Policy, now: number): UserView {
  const profile = policy.profileOf(u.username, u);
  const locked = u.lockedUntil !== null && u.lockedUntil > now;
  return {
    username: u.username,
    method: profile.method,
    method_source: profile.source,
    has_password: u.passwordHash !== null,
    totp: u.totp ? { algorithm: u.totp.algorithm, digits: u.totp.digits, period: u.totp.period } : null,
    locked_until: locked ? new Date(u.lockedUntil!).toISOString() : null,
    lock_scope: locked ? u.lockScope : null,
    lock_reason: locked ? u.lockReason : null,
    created_at: new Date(u.createdAt).toISOString(),
  };
}

/** The server's own method resolution, loaded only by the commands that show it (it reads the RADIUS dictionaries). */
async function loadPolicy(config: Config): Promise<Policy> {
  const { Policy } = await import('../flow/policy.js');
  return new Policy(config);
}

export function formatTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function noUser(name: string): CliError {
  return new CliError(`no user ${name} (radius-mfa user list shows the users)`);
}

async function readPasswordFromStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new CliError("--password-stdin reads piped input, e.g.: printf '%s\\n' \"$PASSWORD\" | radius-mfa user add NAME --password-stdin", 2);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (password === '') throw new CliError('the password from standard input is empty');
  return password;
}
