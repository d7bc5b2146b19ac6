// `radius-mfa web-push keys`: a new VAPID key pair (RFC 8292) for mobile_app.web_push.
import type { Command } from 'commander';
import { isVapidSubject } from '../mfa/vapid.js';
import { CliError, print } from './context.js';

export function registerWebPushCommands(program: Command): void {
  const webPush = program.command('web-push').description('Web Push notifications to the companion app');

  webPush
    .command('keys')
    .description('print a new VAPID key pair as the mobile_app.web_push config section (needs no config)')
    .option('--subject <uri>', 'a mailto: or https: contact for push services', 'mailto:helpdesk@example.com')
    .action(async (opts: { subject: string }) => {
      if (!isVapidSubject(opts.subject)) throw new CliError(`--subject ${JSON.stringify(opts.subject)} must be a mailto: address or an https: URL`, 2);
      // Loaded here: every command (serve too) registers this one.
      const { default: webpush } = await import('web-push');
      const keys = webpush.generateVAPIDKeys();
      print(
        [
          '# Keep the private key secret (or pass it in as "${ENV_VAR}"). Changing the keys makes every',
          '# browser subscription invalid: the apps subscribe again the next time they are opened.',
          'mobile_app:',
          '  web_push:',
          `    vapid_public_key: "${keys.publicKey}"`,
          `    vapid_private_key: "${keys.privateKey}"`,
          `    subject: ${JSON.stringify(opts.subject)}`,
        ].join('\n'),
      );
    });
}
