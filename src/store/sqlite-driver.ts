import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

// better-sqlite3 12 wraps its objects in Node's ObjectWrap. Built against Node 24.19+ headers, that
// class removes an environment cleanup hook in its destructor, and a GC that collects a closed
// Database or a dropped Statement outside a JS context (an allocation from optimized code) aborts the
// process: `Assertion failed: (env) != nullptr`. better-sqlite3 13 (the `better-sqlite3-napi` alias,
// prebuilt, Node-API 10) fixes that; Node 20 has Node-API 9 and crashes loading it. Same API, same
// file format: each Node line gets the one it can run. Drop 12 (and this module) with Node 20.
const NODE_API_OF_BETTER_SQLITE3_13 = 10;

export const SQLITE_DRIVER = Number(process.versions.napi) >= NODE_API_OF_BETTER_SQLITE3_13 ? 'better-sqlite3-napi' : 'better-sqlite3';

export const Database = createRequire(import.meta.url)(SQLITE_DRIVER) as typeof BetterSqlite3;
export type Database = BetterSqlite3.Database;
