// The push bench's traffic: the users' Access-Requests (held by bench/push-approver.mjs), the Mobile App API calls of the simulated phones.
import { type ChildProcess } from 'node:child_process';
import { randomFillSync, sign as ecdsaSign, type generateKeyPairSync } from 'node:crypto';
import { type Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { hmacMd5Key } from '../src/radius/md5.js';
import { checkReplyMessageAuthenticator, packetLength, verifyResponseAuthenticator, writeAccessRequest } from './packet.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { REPO, spawnOnCore } from './servers.js';
import { GENERATOR_CPU, SECRET } from './stage.js';
import { PER_SOCKET, procCpuMs, settle, userName, tokenOf } from './push-common.js';

/** GET `path` as the device with bearer `token`: status and JSON body. */
function get(agent: Agent, port: number, path: string, token: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ agent, host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined }));
    });
    req.on('error', reject).end();
  });
}

/** Runs `jobs` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await job(items[next++]!);
  }));
}

export type ApproverResult = { postedAt: Float64Array; httpAt: Float64Array; acceptedAt: Float64Array; replies: (Uint8Array | null)[]; duplicates: number; failures: string[] };

/**
 * The users' Access-Requests, held by bench/push-approver.mjs (which sends them, approves them and
 * receives the replies: a process that holds nothing else, so the latency it times is the server's, not
 * this process's garbage collections); user k (0-based within the set) uses its socket k/250 with
 * identifier k%250. This side learns the request ids from the server's pushes and checks the replies.
 * postedAt / acceptedAt are on the approver's clock, so they are only subtracted from each other.
 */
export class RequestSet {
  readonly requests: Buffer[] = [];
  readonly acceptedAt: Float64Array;
  readonly code: Uint8Array;
  readonly sentAt: Float64Array;
  /** Request id per user, from the push the server sent (IPC); '' until it arrives. */
  readonly ids: string[];
  readonly pushedAt: Float64Array;
  pushes = 0;
  received = 0;
  unverified = 0;
  duplicates = 0;
  private pushWaiters: (() => void)[] = [];

  private constructor(readonly indexes: number[], private readonly approver: ChildProcess) {
    this.acceptedAt = new Float64Array(indexes.length);
    this.code = new Uint8Array(indexes.length);
    this.sentAt = new Float64Array(indexes.length);
    this.ids = new Array<string>(indexes.length).fill('');
    this.pushedAt = new Float64Array(indexes.length);
    const secret = Buffer.from(SECRET);
    const [maKey, nas, pw] = [hmacMd5Key(secret), Buffer.from('bench-vpn'), Buffer.from('not-checked')];
    indexes.forEach((i, k) => {
      const buf = Buffer.alloc(4096);
      randomFillSync(buf, 4, 16);
      const len = writeAccessRequest(buf, k % PER_SOCKET, Buffer.from(userName(i)), pw, Buffer.alloc(0), nas, secret, maKey, Buffer.from(`198.51.100.${k % 250}`));
      this.requests.push(buf.subarray(0, len));
    });
  }

  /** Spawns the approver (on the bench's core); one process serves one set after another. */
  static spawnApprover(pin: boolean): ChildProcess {
    const options = { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] as ('ignore' | 'inherit' | 'ipc')[], serialization: 'advanced' as const };
    return spawnOnCore(pin ? GENERATOR_CPU : undefined, process.execPath, [join(REPO, 'bench', 'push-approver.mjs')], options);
  }

  static async openOn(approver: ChildProcess, indexes: number[], port: number, httpPort: number): Promise<RequestSet> {
    const set = new RequestSet(indexes, approver);
    approver.send(['init', { port, httpPort, requests: set.requests, tokens: indexes.map((i) => tokenOf(userName(i))) }]);
    await set.reply('ready');
    return set;
  }

  /** The server pushed request `id` to this set's user `k`. */
  onPush(k: number, id: string): void {
    if (!this.ids[k]) this.pushes++;
    this.ids[k] = id;
    this.pushedAt[k] = performance.now();
    const w = this.pushWaiters;
    this.pushWaiters = [];
    for (const f of w) f();
  }

  private nextPush(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(1, timeoutMs));
      this.pushWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  send(k: number): void {
    this.sentAt[k] = performance.now();
    this.approver.send(['send', k]);
  }

  /**
   * Sends these requests (default all) as fast as the server takes them: at most `window` sent and
   * not yet pushed. The server's socket buffer (net.core.rmem_default, 208 KiB) holds only a few
   * hundred datagrams; a burst beyond that is dropped by the kernel. A request whose push has not
   * come 200 ms after the window filled counts as lost (it is re-sent later) and frees its place.
   */
  async sendWindowed(ks: readonly number[] = this.requests.map((_, k) => k), window = 100): Promise<void> {
    const pushedBefore = this.pushes;
    let sent = 0;
    let givenUp = 0;
    for (const k of ks) {
      const deadline = performance.now() + 200;
      while (sent - (this.pushes - pushedBefore) - givenUp >= window) {
        const left = deadline - performance.now();
        if (left <= 0) {
          givenUp = sent - (this.pushes - pushedBefore) - window + 1;
          break;
        }
        await this.nextPush(left);
      }
      this.send(k);
      sent++;
    }
  }

  /**
   * The approver answers users [from, to): `rate` per second (0: all at once over `connections`);
   * fills postedAt (its clock), the HTTP latencies and, from the replies, code / acceptedAt. With `ids`
   * given it posts those instead (the floor, where no server sent a push), waiting for no reply.
   */
  async approve(a: { from: number; to: number; rate: number; connections: number; signatures: string[]; ids?: string[] }, postedAt: Float64Array, httpHist: LatencyHistogram, failures: string[]): Promise<void> {
    this.approver.send(['approve', { ...a, ids: a.ids ?? this.ids, lingerMs: 20_000, expectReplies: !a.ids }]);
    const r = (await this.reply('done')) as ApproverResult;
    for (let k = a.from; k < a.to; k++) {
      postedAt[k] = r.postedAt[k]!;
      if (r.httpAt[k]) httpHist.record(r.httpAt[k]! - r.postedAt[k]!);
    }
    r.replies.forEach((reply, k) => {
      if (!reply || this.code[k]) return;
      const msg = Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength);
      const len = packetLength(msg);
      const secret = Buffer.from(SECRET);
      if (len < 0 || !verifyResponseAuthenticator(msg, len, this.requests[k]!, 4, secret) || checkReplyMessageAuthenticator(msg, len, this.requests[k]!, 4, hmacMd5Key(secret)) > 1) {
        this.unverified++;
        return;
      }
      if (k < a.from || k >= a.to || r.acceptedAt[k]! < r.postedAt[k]!) failures.push(`user ${k}: answered before its approval was posted`);
      this.code[k] = msg[0]!;
      this.acceptedAt[k] = r.acceptedAt[k]!;
      this.received++;
    });
    this.duplicates = r.duplicates;
    failures.push(...r.failures);
  }

  private reply(kind: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onMessage = ([k, body]: [string, unknown]) => {
        if (k !== kind) return;
        this.approver.off('message', onMessage).off('exit', onExit);
        resolve(body);
      };
      const onExit = (code: number) => reject(new Error(`bench/push-approver.mjs exited ${code}`));
      this.approver.on('message', onMessage).once('exit', onExit);
    });
  }
}

/** Sends every request and re-sends (paced) those whose push has not come: returns how many were re-sent. */
export async function holdAll(set: RequestSet, pid: number): Promise<{ missingAtFirst: number; retransmitted: number }> {
  await set.sendWindowed();
  let missingAtFirst = -1;
  let retransmitted = 0;
  for (let round = 0; round < 6; round++) {
    await settle(pid, 300);
    const missing = set.ids.map((id, k) => (id ? -1 : k)).filter((k) => k >= 0);
    if (missingAtFirst < 0) missingAtFirst = missing.length;
    if (missing.length === 0) return { missingAtFirst, retransmitted };
    await set.sendWindowed(missing);
    retransmitted += missing.length;
  }
  throw new Error(`${set.ids.filter((id) => !id).length} requests got no push after 5 re-sends (${set.received} were answered)`);
}

/** `count` devices poll GET /pending with everything held: latency per poll, and each sees its own request. */
export async function samplePolls(set: RequestSet, agent: Agent, httpPort: number, count: number, pid: number): Promise<{ latency: LatencySummary; serverCpuMsPerPoll: number; wrong: number }> {
  const hist = new LatencyHistogram();
  let wrong = 0;
  const step = Math.max(1, Math.floor(set.indexes.length / Math.max(1, count)));
  const ks = Array.from({ length: count }, (_, j) => (j * step) % set.indexes.length);
  const cpu0 = procCpuMs(pid);
  await pool(ks, 4, async (k) => {
    const name = userName(set.indexes[k]!);
    const t = performance.now();
    const r = await get(agent, httpPort, '/api/v1/pending', tokenOf(name));
    hist.record(performance.now() - t);
    const items = r.status === 200 ? (r.body as { id: string }[]) : [];
    if (items.length !== 1 || items[0]!.id !== set.ids[k]) wrong++;
  });
  return { latency: hist.summary(), serverCpuMsPerPoll: count ? Math.round(((procCpuMs(pid) - cpu0) / count) * 1000) / 1000 : 0, wrong };
}

export function signAll(ids: string[], privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']): string[] {
  return ids.map((id) => ecdsaSign('sha256', Buffer.from(`${id}.approve`, 'utf8'), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64'));
}
