// Forwards verified Accounting-Requests to upstream accounting servers (RFC 2866 as a proxy).
// The NAS is answered once the request is logged here; forwarding runs behind it, with the client's
// retransmission and failover, and a failure is logged (the JSON log line stays the record).
import type { Logger } from 'pino';
import { UpstreamClient, type UpstreamServer } from './client.js';
import { Attr, Code, type RadiusPacket } from './packet.js';

export interface AccountingForwarderOptions {
  servers: readonly UpstreamServer[];
  timeoutMs: number;
  retries: number;
  logger: Logger;
}

export class AccountingForwarder {
  private readonly client: UpstreamClient;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly options: AccountingForwarderOptions) {
    this.client = new UpstreamClient({ servers: options.servers, timeoutMs: options.timeoutMs, retries: options.retries, logger: options.logger });
  }

  /** Re-signs the request with the upstream's secret; Message-Authenticator is per hop and is dropped. */
  forward(packet: RadiusPacket, q: number): void {
    const attributes = Buffer.concat(
      packet.attributes.filter((a) => a.type !== Attr.MessageAuthenticator).map((a) => packet.raw.subarray(a.offset, a.offset + a.value.length + 2)),
    );
    const run = this.client.exchange({ code: Code.AccountingRequest, attributes }).then((r) => {
      if (r.kind === 'response') this.options.logger.debug({ q, upstream: r.server }, 'accounting forwarded');
      else this.options.logger.error({ q, reason: r.detail }, `accounting not forwarded: no upstream accounting server answered (${r.detail})`);
    });
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
  }

  /** Waits for forwards in flight (bounded by timeout x tries x servers), then closes the socket. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    await this.client.close();
  }
}
