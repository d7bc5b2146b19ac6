// Summarizes a V8 .cpuprofile (node --cpu-prof): self time by function and by file/package, so "where
// does the time go per request" has an answer (`npm run bench -- --profile` profiles ours).
//   node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top 25] [--requests N]
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

type CallFrame = { functionName: string; url: string; lineNumber: number; columnNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
type Profile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

export type ProfileSummary = ReturnType<typeof summarizeProfile>;

/** Groups a script URL: our src/dist modules by path, node_modules by package, node internals as "node:<module>". */
function groupOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `npm:${nm[1]}`;
  const own = /\/(dist|src)\/(.+)$/.exec(url);
  if (own) return `${own[1]}/${own[2]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[url.slice(5).startsWith('internal') ? 1 : 0] ?? url}`;
  return url.split('/').slice(-2).join('/');
}

const sourceMaps = new Map<string, SourceMap | undefined>();

/** Where a frame of the bundle (dist/cli.js and its chunks) was in src/ or node_modules, by the bundle's source map. */
function original(frame: CallFrame): { url: string; lineNumber: number } {
  if (!frame.url.startsWith('file://')) return frame;
  const file = fileURLToPath(frame.url);
  if (!sourceMaps.has(file)) sourceMaps.set(file, existsSync(`${file}.map`) ? new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8'))) : undefined);
  const entry = sourceMaps.get(file)?.findEntry(frame.lineNumber, frame.columnNumber) as { originalSource?: string; originalLine?: number } | undefined;
  if (!entry?.originalSource) return frame;
  return { url: new URL(entry.originalSource, frame.url).href, lineNumber: entry.originalLine ?? frame.lineNumber };
}

export function summarizeProfile(file: string, top = 25) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  });
  const fnTime = new Map<string, number>();
  const groupTime = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { functionName } = n.callFrame;
    const { url, lineNumber } = original(n.callFrame);
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    const where = url ? `${url.replace(/^file:\/\/.*?\/(dist|src|node_modules)\//, '$1/')}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    fnTime.set(key, (fnTime.get(key) ?? 0) + us);
    const g = groupOf(url, functionName);
    groupTime.set(g, (groupTime.get(g) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number) => Math.round((us / busy) * 1000) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  return {
    totalMs: ms(total),
    busyMs: ms(busy),
    byFunction: [...fnTime].sort((x, y) => y[1] - x[1]).slice(0, top).map(([name, us]) => ({ name, ms: ms(us), percentOfBusy: pct(us) })),
    byGroup: [...groupTime].sort((x, y) => y[1] - x[1]).slice(0, top).map(([group, us]) => ({ group, ms: ms(us), percentOfBusy: pct(us) })),
  };
}

export function formatProfile(s: ProfileSummary, requests?: number): string {
  const perReq = (ms: number) => (requests ? `  ${((ms * 1000) / requests).toFixed(2)} µs/req` : '');
  return [
    `profile: ${s.busyMs} ms busy of ${s.totalMs} ms` + (requests ? ` for ~${requests} requests (${((s.busyMs * 1000) / requests).toFixed(1)} µs busy per request)` : ''),
    'self time by module/package:',
    ...s.byGroup.map((g) => `  ${g.percentOfBusy.toFixed(1).padStart(5)}%  ${g.group}${perReq(g.ms)}`),
    'self time by function:',
    ...s.byFunction.map((f) => `  ${f.percentOfBusy.toFixed(1).padStart(5)}%  ${f.name}${perReq(f.ms)}`),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' }, requests: { type: 'string' } } });
  for (const f of positionals) console.log(formatProfile(summarizeProfile(f, Number(values.top ?? 25)), values.requests ? Number(values.requests) : undefined));
}
