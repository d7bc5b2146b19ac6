#!/usr/bin/env node
// radius-mfa's entry point. V8's compile cache goes on first (Node 22.1+, module.enableCompileCache;
// Node 20 has none), so the program imported below is compiled from the cache after the first run:
// ~20 ms less start-up. The cache is Node's: os.tmpdir()/node-compile-cache or NODE_COMPILE_CACHE.
import module from 'node:module';
import './threadpool.js';

(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
await import('./cli/program.js');
