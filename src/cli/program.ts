// radius-mfa: the admin command line. Exit codes: 0 ok, 1 an admin must fix data or config, 2 usage error.
import { Command, CommanderError, Option } from 'commander';
import { formatIssues, loadConfig } from '../config/load.js';
import { CliError, print, warn } from './context.js';
import { registerDeviceCommands } from './device-commands.js';
import { registerStoreCommands } from './store-commands.js';
import { registerTotpCommands } from './totp-commands.js';
import { registerUserCommands } from './user-commands.js';
import { registerWebPushCommands } from './web-push-commands.js';
import { describeError } from '../shared/errors.js';
import { versionLine } from '../version.js';
import type { TestOptions } from './test-command.js';

const DEFAULT_CONFIG = 'config/config.yaml';

function buildProgram(): Command {
  const program = new Command('radius-mfa')
    .description('RADIUS MFA server: password + TOTP for VPN appliances')
    .addOption(new Option('-c, --config <path>', 'config file').env('RADIUS_MFA_CONFIG').default(DEFAULT_CONFIG))
    .version(versionLine(), '-V, --version', 'print the version and exit')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  const configPath = (cmd: Command) => (cmd.optsWithGlobals() as { config: string }).config;

  program
    .command('serve')
    .description('run the RADIUS server until SIGTERM/SIGINT (SIGHUP reloads the config)')
    .action(async (_opts: unknown, cmd: Command) => {
      // Loaded on demand: the admin commands need none of the server.
      const { serve } = await import('../serve.js');
      await serve(configPath(cmd));
    });

  program
    .command('check-config')
    .description('validate the config file; prints every problem with line:column')
    .option('--connect', 'also connect to every configured backend (store, LDAP, upstream RADIUS, FCM, Web Push); one line each')
    .action(async (opts: { connect?: boolean }, cmd: Command) => {
      const path = configPath(cmd);
      const loaded = loadConfig(path);
      // The TLS and key rules are part of loading (config/rules.ts): what serve refuses, check-config reports.
      if (!loaded.ok) throw new CliError(formatIssues(loaded.issues));
      for (const w of loaded.warnings) warn(w);
      print(`OK ${path}${loaded.warnings.length ? ` (${loaded.warnings.length} warning${loaded.warnings.length === 1 ? '' : 's'})` : ''}`);
      if (!opts.connect) return;
      // Loaded on demand: ldapts, web-push and firebase-admin are not needed to validate a file.
      const { checkConnections } = await import('./check-connect.js');
      if (!(await checkConnections(loaded.config))) throw new CliError('some backends failed: see the FAIL lines above');
    });

  program
    .command('test')
    .description('send a signed Access-Request as a NAS would; password and codes are read from the terminal or stdin (one line each)')
    .argument('<user>', 'User-Name to send')
    .option('--server <host:port>', 'RADIUS server (default: the first listen.auth of the config, 0.0.0.0 as 127.0.0.1)')
    .option('--secret <secret>', 'shared secret (default: the secret of the config client that covers 127.0.0.1); visible in ps: prefer the config')
    .option('--nas-ip <ip>', 'NAS-IP-Address to send', '127.0.0.1')
    .option('--timeout <seconds>', 'how long to wait for each reply in all (default: mfa.push.timeout + 5 s, else 65 s)')
    .option('--log <file>', "the server's log file: print this login's audit lines from it")
    .action(async (user: string, opts: TestOptions, cmd: Command) => {
      const { runTest } = await import('./test-command.js');
      process.exitCode = await runTest(configPath(cmd), user, opts);
    });

  registerUserCommands(program, configPath);
  registerTotpCommands(program, configPath);
  registerDeviceCommands(program, configPath);
  registerWebPushCommands(program);
  registerStoreCommands(program, configPath);
  return program;
}

/** Expected failures (the catalog in shared/errors.ts) print one message and no stack; anything else is a bug and keeps its stack. */
function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    // commander has already printed the message or the help.
    return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2;
  }
  const known = describeError(err);
  if (!known) {
    process.stderr.write(`radius-mfa: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
  // Several lines are FILE:LINE reports (config issues, CSV rows): kept as they are so editors can jump to them.
  process.stderr.write(known.message.includes('\n') ? `${known.message}\n` : `radius-mfa: ${known.message}\n`);
  return known.exitCode;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.exitCode = exitCodeFor(err);
}
