// Outages of the shared engines (PostgreSQL store, Redis state). Every call to them goes through a guard
// that turns "the engine did not answer" into one typed error the request handler maps to its own reject
// reason (store_unavailable / state_unavailable): never a crash, never a request left without a reply,
// never an Accept. The monitor logs one line when an engine goes down and one when it answers again
// (not one per request), and feeds the radius_engine_up gauge.
import type { Logger } from 'pino';
import type { PendingPushes, PushOutcome, PushWaiter } from '../mfa/pending.js';
import type { EphemeralState } from '../state/state.js';
import { StoreError, type Store } from '../store/store.js';

export type Engine = 'store' | 'state';

export class EngineUnavailableError extends Error {
  readonly code = 'ENGINE_UNAVAILABLE';
  constructor(
    readonly engine: Engine,
    override readonly cause: unknown,
  ) {
    super(`${engine} unavailable: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'EngineUnavailableError';
  }
}

interface EngineStatus {
  up: boolean;
  since: number;
  error?: string;
}

export class EngineMonitor {
  private readonly engines = new Map<Engine, EngineStatus & { kind: string }>();

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Registers an engine to watch (e.g. 'store' as 'postgres'). */
  watch(engine: Engine, kind: string): void {
    this.engines.set(engine, { kind, up: true, since: this.now() });
  }

  down(engine: Engine, err: unknown): void {
    const s = this.engines.get(engine);
    if (!s || !s.up) return;
    Object.assign(s, { up: false, since: this.now(), error: (err as Error)?.message ?? String(err) });
    this.logger.error(
      { engine, kind: s.kind, err: s.error },
      `${s.kind} (${engine}) unavailable: requests that need it are rejected with ${engine}_unavailable until it answers again`,
    );
  }

  up(engine: Engine): void {
    const s = this.engines.get(engine);
    if (!s || s.up) return;
    const downMs = this.now() - s.since;
    Object.assign(s, { up: true, since: this.now(), error: undefined });
    this.logger.warn({ engine, kind: s.kind, down_ms: downMs }, `${s.kind} (${engine}) answers again`);
  }

  /** Engines watched, and whether they answered their last call. */
  statuses(): { engine: Engine; kind: string; up: boolean; error?: string }[] {
    return [...this.engines].map(([engine, s]) => ({ engine, kind: s.kind, up: s.up, error: s.error }));
  }
}

/** Errors that say the engine answered: the caller's mistake (StoreError) or bad data, not an outage. */
function answeredByEngine(err: unknown): boolean {
  if (err instanceof StoreError) return true;
  // PostgreSQL SQLSTATE classes 22 (data exception), 23 (integrity), 42 (syntax or access rule): the server answered.
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^(22|23|42)[0-9A-Z]{3}$/.test(code);
}

function guard<T extends object>(target: T, engine: Engine, monitor: EngineMonitor): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver) as unknown;
      if (prop === 'devices' && value && typeof value === 'object') return guard(value as object, engine, monitor);
      if (typeof value !== 'function' || prop === 'close') return value;
      // PendingPushes.listen answers later, through its waiter: that answer is watched too.
      if (prop === 'listen') return (id: string, waiter: PushWaiter) => (value as PendingPushes['listen']).call(obj, id, new WatchedWaiter(waiter, engine, monitor));
      return (...args: unknown[]) => {
        let result: unknown;
        try {
          result = (value as (...a: unknown[]) => unknown).apply(obj, args);
        } catch (err) {
          throw classify(err);
        }
        if (!(result instanceof Promise)) return result;
        return result.then(
          (v) => {
            monitor.up(engine);
            return v;
          },
          (err: unknown) => {
            throw classify(err);
          },
        );
      };
    },
  });

  function classify(err: unknown): unknown {
    return classified(err, engine, monitor);
  }
}

function classified(err: unknown, engine: Engine, monitor: EngineMonitor): unknown {
  if (answeredByEngine(err)) {
    monitor.up(engine);
    return err;
  }
  monitor.down(engine, err);
  return new EngineUnavailableError(engine, err);
}

/** A held request's waiter, watched as a call's promise is: an outcome says the engine answered, a failure is classified. */
class WatchedWaiter implements PushWaiter {
  constructor(
    private readonly inner: PushWaiter,
    private readonly engine: Engine,
    private readonly monitor: EngineMonitor,
  ) {}

  settled(outcome: PushOutcome | undefined): void {
    this.monitor.up(this.engine);
    this.inner.settled(outcome);
  }

  failed(err: unknown): void {
    this.inner.failed(classified(err, this.engine, this.monitor));
  }
}

/** The store with every call watched: an outage becomes EngineUnavailableError('store'). */
export function guardStore(store: Store, monitor: EngineMonitor): Store {
  return guard(store, 'store', monitor);
}

/** The state with every call watched: an outage becomes EngineUnavailableError('state'). */
export function guardState(state: EphemeralState, monitor: EngineMonitor): EphemeralState {
  return guard(state, 'state', monitor);
}

/** Pending pushes kept in the shared state, watched as the state is (a held request's wait included). */
export function guardPushes(pushes: PendingPushes, monitor: EngineMonitor): PendingPushes {
  return guard(pushes, 'state', monitor);
}

export interface EnginePing {
  engine: Engine;
  kind: string;
  ping: () => void | Promise<void>;
}

/**
 * Asks each engine for a sign of life now and resolves with those that gave none within `capMs`
 * (pings through the guards above also update the monitor). Concurrent callers share one round, so a
 * burst of Status-Server probes is one ping per engine.
 */
export function enginesDownProbe(pings: readonly EnginePing[], capMs: number): () => Promise<{ engine: Engine; kind: string }[]> {
  let running: Promise<{ engine: Engine; kind: string }[]> | undefined;
  const answers = (p: EnginePing) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), capMs)));
    const ping = Promise.resolve()
      .then(p.ping)
      .then(
        () => true,
        () => false,
      );
    return Promise.race([ping, late]).finally(() => clearTimeout(timer));
  };
  return () =>
    (running ??= Promise.all(pings.map(answers))
      .then((ok) => pings.filter((_, i) => !ok[i]).map(({ engine, kind }) => ({ engine, kind })))
      .finally(() => (running = undefined)));
}
