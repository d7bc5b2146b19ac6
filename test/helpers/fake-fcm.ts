// A local stand-in for FCM (fcm.googleapis.com) that firebase-admin's own send() reaches through an
// https.Agent redirecting every connection to it, with a fake credential (no OAuth exchange):
// firebase-admin has no emulator setting for messaging and its FCM host is hard-coded.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { Agent } from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createFirebasePushSender, type PushSender } from '../../src/mfa/push-sender.js';

export const PROJECT = 'demo-proj';

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: { message: Record<string, unknown> };
}

export type Reply = { status: number; body?: unknown; headers?: Record<string, string> } | 'hang-up';

/** Plain-HTTP stand-in for fcm.googleapis.com: records each request, answers from a script. */
export class FakeFcm {
  readonly received: Received[] = [];
  private constructor(
    private readonly server: Server,
    private readonly reply: (n: number) => Reply,
  ) {}

  static async start(reply: (n: number) => Reply): Promise<FakeFcm> {
    let fake: FakeFcm;
    const server = createServer((req, res) => {
      let data = '';
      req.setEncoding('utf8').on('data', (d: string) => (data += d));
      req.on('end', () => {
        fake.received.push({ method: req.method!, url: req.url!, headers: req.headers, body: JSON.parse(data) as Received['body'] });
        const r = fake.reply(fake.received.length);
        if (r === 'hang-up') return req.socket.destroy();
        res.writeHead(r.status, { 'content-type': 'application/json; charset=UTF-8', ...r.headers }).end(JSON.stringify(r.body ?? {}));
      });
    });
    fake = new FakeFcm(server, reply);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** An https.Agent whose every connection goes to 127.0.0.1:port over plain TCP; it records what was asked for. */
export class RedirectAgent extends Agent {
  readonly asked: string[] = [];
  constructor(private readonly port: number) {
    super({ keepAlive: false });
  }
  override createConnection(options: { host?: string; port?: number | string }): net.Socket {
    this.asked.push(`${options.host}:${options.port}`);
    return net.connect(this.port, '127.0.0.1');
  }
}

let appCount = 0;

/** A FirebasePushSender whose requests reach the fake FCM on `port` (and nothing else). */
export async function senderFor(port: number) {
  const agent = new RedirectAgent(port);
  let tokenRequests = 0;
  const credential = {
    async getAccessToken() {
      tokenRequests++;
      return { access_token: 'fake-access-token', expires_in: 3600 };
    },
  };
  const sender: PushSender = await createFirebasePushSender({ credential, projectId: PROJECT, httpAgent: agent, appName: `firebase-test-${++appCount}` });
  return { sender, agent, tokenRequests: () => tokenRequests };
}

