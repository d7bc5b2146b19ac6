// A value now or later. An engine in this process (memory state, SQLite's user cache) answers at once;
// one over the network (Redis, PostgreSQL) answers with a promise. The request flow is written once, as
// generators run by `run`: it goes on synchronously while every step answers at once, and waits only
// from the first step that returns a promise. An async function that awaits costs about 400 bytes and a
// microtask hop; a generator step about 25 ns and no promise. With every step in memory a TOTP decision
// makes no promise at all (29 counted with async_hooks before).

export type Awaitable<T> = T | Promise<T>;

/** A flow of steps: it yields only promises (through `wait`), and `run` resumes it with their values. */
export type Flow<T> = Generator<unknown, T, unknown>;

/** One step of a flow: `const x = yield* wait(step())`. Yields only when the step returned a promise. */
export function* wait<T>(value: Awaitable<T>): Flow<T> {
  return value instanceof Promise ? ((yield value) as T) : value;
}

/** Runs a flow: its result at once when no step waited, else a promise of it. A step's error is thrown into the flow. */
export function run<T>(flow: Flow<T>): Awaitable<T> {
  const first = flow.next();
  return first.done ? first.value : resume(flow, first.value);
}

let resumed = 0;

/**
 * How many times flows have resumed after a promise. Two readings in one flow are equal exactly when the
 * flow did not wait in between: no other code ran, so what it read before is still what it would read now.
 */
export function resumptions(): number {
  return resumed;
}

async function resume<T>(flow: Flow<T>, pending: unknown): Promise<T> {
  for (;;) {
    let step: IteratorResult<unknown, T>;
    let answer: unknown;
    try {
      answer = await pending;
    } catch (err) {
      resumed++;
      step = flow.throw(err);
      if (step.done) return step.value;
      pending = step.value;
      continue;
    }
    resumed++;
    step = flow.next(answer);
    if (step.done) return step.value;
    pending = step.value;
  }
}

/** f of the value: at once when it is one, after it when it is a promise. */
export function then<T, U>(value: Awaitable<T>, f: (value: T) => Awaitable<U>): Awaitable<U> {
  return value instanceof Promise ? value.then(f) : f(value);
}

/** Independent steps started together: done at once when none returned a promise. */
export function allDone(steps: readonly Awaitable<unknown>[]): Awaitable<void> {
  return steps.some((s) => s instanceof Promise) ? Promise.all(steps).then(nothing) : undefined;
}

function nothing(): void {}
