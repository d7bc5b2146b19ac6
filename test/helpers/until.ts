// Waiting for a condition in tests: polled every 20 ms, bounded, with a message naming what never came.

/** Resolves with get()'s first defined value; throws after timeoutMs naming `what`. */
export async function until<T>(get: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
