// Where log lines go in `serve`: stdout (a file, a pipe, journald's socket). Lines are copied into one
// byte buffer and written with one writeSync at the end of the macrotask that produced them (setImmediate),
// so a burst of 64 decisions from one recvmmsg costs one write(2), not 64. writeSync runs on the main
// thread: no libuv thread pool (argon2 hashes there), no queue of pending writes in memory, and every line
// is in the kernel by the time the event loop goes back to wait. A full non-blocking pipe (EAGAIN) keeps
// the bytes and retries on a timer; only past MAX_BUFFERED does a write wait for the reader, and no wait
// lasts past stallLimitMs: a reader stuck that long loses the waiting lines, counted on stderr, rather
// than stopping every sign-in (or the exit) with it.
import { fstatSync, openSync, writeSync, constants } from 'node:fs';

const INITIAL_BYTES = 64 * 1024;
/** Buffered bytes past which the sink stops growing and waits for the reader instead (bounded memory). */
const MAX_BUFFERED = 16 * 1024 * 1024;
const RETRY_MS = 2;
const STALL_LIMIT_MS = 5000;

export class LineSink {
  private buf = Buffer.allocUnsafe(INITIAL_BYTES);
  private used = 0;
  private scheduled = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly fd: number,
    private readonly stallLimitMs = STALL_LIMIT_MS,
  ) {}

  /**
   * A pipe (FIFO) is reopened non-blocking through /proc, so that a stalled reader costs EAGAIN and a
   * retry, not a stall of the request path. Files never block for long; sockets (journald) keep the fd.
   */
  static stdout(): LineSink {
    let fd = 1;
    try {
      if (fstatSync(1).isFIFO()) fd = openSync('/proc/self/fd/1', constants.O_WRONLY | constants.O_NONBLOCK);
    } catch {
      // No /proc (or no reader yet): write to fd 1 as it is.
    }
    const sink = new LineSink(fd);
    // Whatever ends the process (an uncaught error included), the lines logged before it get out.
    process.on('exit', () => sink.flushSync());
    return sink;
  }

  /** pino's DestinationStream: `line` is one or more whole lines, each ending in \n. */
  write(line: string): void {
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    if (this.used + line.length * 3 > this.buf.length) this.makeRoom(line.length * 3);
    this.used += this.buf.write(line, this.used);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  /**
   * Writes everything buffered before returning, waiting for a full pipe's reader (exit, SIGTERM, pino's
   * flush), for at most stallLimitMs without progress; then the rest is dropped and counted on stderr.
   */
  flushSync(): void {
    let progressAt = Date.now();
    while (this.used > 0) {
      const before = this.used;
      if (this.writeSome() && this.used < before) progressAt = Date.now();
      else if (Date.now() - progressAt >= this.stallLimitMs) return this.dropStalled();
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, RETRY_MS);
    }
  }

  private dropStalled(): void {
    let lines = 0;
    for (let at = this.buf.indexOf(10); at >= 0 && at < this.used; at = this.buf.indexOf(10, at + 1)) lines++;
    this.used = 0;
    try {
      writeSync(2, `radius-mfa: the log's reader took nothing for ${this.stallLimitMs} ms: ${lines} log lines dropped\n`);
    } catch {
      // stderr is gone too: nowhere left to say it.
    }
  }

  /** pino calls this from logger.flush(). */
  flush(cb?: (err?: Error) => void): void {
    this.flushSync();
    cb?.();
  }

  private readonly flushSoon = (): void => {
    this.scheduled = false;
    if (this.retry) return;
    while (this.used > 0) {
      if (!this.writeSome()) {
        this.retry = setTimeout(() => {
          this.retry = undefined;
          this.flushSoon();
        }, RETRY_MS);
        return;
      }
    }
  };

  /** One write(2); false when the pipe is full (EAGAIN). Bytes not written move to the front. */
  private writeSome(): boolean {
    let n: number;
    try {
      n = writeSync(this.fd, this.buf, 0, this.used);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return false;
      // Nobody reads stdout any more (EPIPE, EBADF): there is nowhere to write these lines, or to say so.
      this.used = 0;
      return true;
    }
    if (n < this.used) this.buf.copy(this.buf, 0, n, this.used);
    this.used -= n;
    return true;
  }

  private makeRoom(bytes: number): void {
    // The reader has fallen MAX_BUFFERED behind: wait for it rather than lose lines or grow without bound.
    if (this.used > 0 && this.used + bytes > MAX_BUFFERED) this.flushSync();
    const needed = this.used + bytes;
    if (needed <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, needed));
    this.buf.copy(bigger, 0, 0, this.used);
    this.buf = bigger;
  }
}
