// `npm run build`, after tsc: dist/cli.js becomes one ESM bundle of src/ with yaml, zod, commander,
// lru-cache and pino inside, plus chunks beside it for what the CLI imports on demand (serve, the admin
// commands, pg, ...). Start-up time: Node 20 has no compile cache, and resolving, reading and compiling
// ~250 module files one by one was a third of the time to the first answer (docs/performance.md,
// "Start-up"). tsc's per-module files stay in dist/ for what imports them (bench/push-server.mjs).
// Other packages stay external: native addons, and those that find files of their own at run time
// (pino does only for transports, which we do not use).
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const INLINE = new Set(['yaml', 'zod', 'commander', 'lru-cache', 'pino']);

/** A bare import in src/ of a package outside INLINE stays an import, resolved by Node at run time; an inlined package's own dependencies are inlined with it. */
const external: Plugin = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.importer.includes(`${sep}node_modules${sep}`)) return undefined;
      const name = args.path.startsWith('@') ? args.path.split('/').slice(0, 2).join('/') : args.path.split('/')[0]!;
      return INLINE.has(name) ? undefined : { path: args.path, external: true };
    });
  },
};

/** Every bundle file sits in dist/; a module's import.meta.url becomes the URL of its own file in dist/ (as tsc emits it), so `../../dictionaries/` and createRequire still resolve from there. */
const ownUrl: Plugin = {
  name: 'own-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /[/\\]src[/\\].*\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const own = `./${relative(`${ROOT}src`, args.path).replaceAll('\\', '/').replace(/\.ts$/, '.js')}`;
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(own)}, import.meta.url).href`), loader: 'ts' };
    });
  },
};

// Chunk names change with their content: the previous build's would stay (and be packed) otherwise.
for (const f of readdirSync(`${ROOT}dist`)) if (f.startsWith('chunk-')) rmSync(`${ROOT}dist/${f}`);

await build({
  entryPoints: [`${ROOT}src/cli.ts`],
  outdir: `${ROOT}dist`,
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  chunkNames: 'chunk-[hash]',
  // commander and pino are CommonJS: their require() calls of node: modules need a real require in an ES module.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module';\nconst require = __bundleRequire(import.meta.url);" },
  plugins: [external, ownUrl],
  logLevel: 'warning',
});
