// `radius-mfa device ...`: enroll (one-time activation code + QR), list, remove.
import type { Command } from 'commander';
import { createActivation, type Activation } from '../mfa/activation.js';
import type { DeviceRecord } from '../store/store.js';
import { CliError, loadConfigOrFail, print, userArg, warn, withStore } from './context.js';
import { formatTable } from './user-commands.js';

type ConfigPath = (cmd: Command) => string;

export function registerDeviceCommands(program: Command, configPath: ConfigPath): void {
  const device = program.command('device').description('phones that answer push approvals (Mobile App API)');

  device
    .command('enroll')
    .description('print a one-time activation code, the service URL and a QR code for the app')
    .argument('<user>')
    .option('--json', 'print {activation_code, url, expires, account_name, qr_payload}')
    .option('--totp', "the app also becomes the user's TOTP token (it gets the user's TOTP secret at activation)")
    .action(async (name: string, opts: { json?: boolean; totp?: boolean }, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      name = userArg(name, config);
      const activation = await withStore(config, async (store) => {
        if (!(await store.getUser(name))) throw new CliError(`no user ${name}; add it first: radius-mfa user add ${name}`);
        return createActivation(store, config, name, Date.now(), opts.totp === true);
      });
      if (!config.http) warn('no http section in the config: the Mobile App API is off, so no phone can activate until it is configured');
      else if (!config.mobile_app.public_url && isLoopback(config.http.listen.host)) {
        warn(`mobile_app.public_url is not set, so phones are told ${activation.url}, which only this machine reaches: set it to the address phones use`);
      }
      if (opts.json) return print(JSON.stringify(activation, null, 2));
      // Loaded here so that other commands do not pay for it at start.
      const { default: QRCode } = await import('qrcode');
      print(await formatActivation(name, activation, opts.totp === true, await QRCode.toString(activation.qr_payload, { type: 'terminal', small: true })));
    });

  device
    .command('list')
    .description("list activated devices (never their keys or tokens)")
    .argument('[user]', 'only this user\'s devices')
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      if (name !== undefined) name = userArg(name, config);
      const devices = await withStore(config, async (store) => {
        if (name !== undefined && !(await store.getUser(name))) throw new CliError(`no user ${name} (radius-mfa user list shows the users)`);
        return store.devices.list(name);
      });
      const views = devices.map(describeDevice);
      if (opts.json) return print(JSON.stringify(views, null, 2));
      if (views.length === 0) return print(`no devices${name === undefined ? '' : ` for ${name}`}; activate one with: radius-mfa device enroll ${name ?? 'USER'}`);
      print(
        formatTable(
          ['ID', 'USER', 'NAME', 'PUSH TOKEN', 'CREATED', 'LAST SEEN'],
          views.map((v) => [v.id, v.username, v.name, v.push_token, v.created_at, v.last_seen_at ?? 'never']),
        ),
      );
    });

  device
    .command('remove')
    .description('deregister a device: its token stops working at once (pending requests stay answerable by other devices)')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      const removed = await withStore(config, async (store) => {
        const found = (await store.devices.list()).find((d) => d.id === id);
        if (!found || !(await store.devices.remove(id))) throw new CliError(`no device ${id} (radius-mfa device list shows the devices)`);
        return found;
      });
      print(`removed device ${removed.id} (${JSON.stringify(removed.name)}) of ${removed.username}`);
    });
}

export interface DeviceView {
  id: string;
  username: string;
  name: string;
  /** yes = push token set (FCM or Web Push), no = the device polls, stale = the push service refused it: the app must send a new one. */
  push_token: 'yes' | 'no' | 'stale';
  created_at: string;
  last_seen_at: string | null;
}

function describeDevice(d: DeviceRecord): DeviceView {
  return {
    id: d.id,
    username: d.username,
    name: d.name,
    push_token: d.pushToken === null ? 'no' : d.pushTokenStale ? 'stale' : 'yes',
    created_at: new Date(d.createdAt).toISOString(),
    last_seen_at: d.lastSeenAt === null ? null : new Date(d.lastSeenAt).toISOString(),
  };
}

function formatActivation(name: string, a: Activation, withTotp: boolean, qr: string): string {
  const minutes = Math.max(0, Math.round((Date.parse(a.expires) - Date.now()) / 60_000));
  return [
    `activation code for ${name}: ${a.activation_code}`,
    `expires:  ${a.expires} (in ${minutes} min; single use)`,
    `url:      ${a.url}`,
    `account:  ${a.account_name}`,
    ...(withTotp ? ['totp:     the app becomes this user\'s TOTP token when it activates'] : []),
    '',
    qr.trimEnd(),
    '',
    'Scan the QR code with the app, or type the URL and the activation code into it.',
  ].join('\n');
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
