#!/usr/bin/env -S node --max-semi-space-size=4
// radius-mfa's entry point. V8's compile cache goes on first (Node 22.1+, module.enableCompileCache;
// Node 20 has none), so the program imported below is compiled from the cache after the first run:
// ~20 ms less start-up. The cache is Node's: os.tmpdir()/node-compile-cache or NODE_COMPILE_CACHE.
// The shebang caps V8's young generation at 2 x 4 MiB. Held push requests all survive their first
// scavenges, and V8 answers that by growing it to 2 x 16 MiB: +24 MiB of RSS at a burst of held pushes.
// The cap costs no throughput at 64 outstanding and 0-5 % at 256, with a lower p99 (docs/performance.md).
// `npm start` passes the same flag; for another size run node with it (node --max-semi-space-size=N dist/cli.js).
import module from 'node:module';
import './threadpool.js';

(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
await import('./cli/program.js');
