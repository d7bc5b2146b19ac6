// Imported first by cli.ts: libuv sizes its thread pool when it is first used, from this variable.
// Password hashes run there (at most one per core: app.ts CHECKS_AT_ONCE.local), and so do file reads,
// DNS lookups and other async fs calls: with four threads more than the hashes can take, those never wait
// behind a spray's hashes. (Log lines do not use the pool: log/line-sink.ts writes them synchronously.)
// An admin's own UV_THREADPOOL_SIZE wins.
import { availableParallelism } from 'node:os';

process.env.UV_THREADPOOL_SIZE ??= String(availableParallelism() + 4);
