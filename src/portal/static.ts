// The files of the companion app (/app/) and the portal's stylesheet and script (/portal/static/),
// read once from web/ (and the QR decoder from node_modules) at start and served from memory with an ETag.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** Same-origin only: no inline script or style, no framing. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

/** web/ next to src/ and dist/ alike. */
const WEB_ROOT = new URL('../../web/', import.meta.url);

function staticFile(name: string, body: Buffer): StaticFile | undefined {
  const type = TYPES[name.slice(name.lastIndexOf('.'))];
  return type ? { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` } : undefined;
}

function loadDir(sub: string): Map<string, StaticFile> {
  const dir = new URL(`${sub}/`, WEB_ROOT);
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(dir)) {
    const file = staticFile(name, readFileSync(new URL(name, dir)));
    if (file) files.set(name, file);
  }
  return files;
}

/** The app's QR decoder for browsers without BarcodeDetector: jsQR's browser build, as npm installed it. */
function loadQrDecoder(): StaticFile {
  return staticFile('jsQR.js', readFileSync(createRequire(import.meta.url).resolve('jsqr/dist/jsQR.js')))!;
}

export function staticRoutes(app: FastifyInstance): void {
  const appFiles = loadDir('app').set('jsQR.js', loadQrDecoder());
  const portalFiles = loadDir('portal');
  const serve = (files: Map<string, StaticFile>, name: string) => async (request: FastifyRequest, reply: FastifyReply) => {
    const file = files.get(name);
    if (!file) return reply.status(404).type('text/plain; charset=utf-8').send('Not found');
    reply
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      // Revalidate every time: the service worker keeps its own copy for offline use.
      .header('cache-control', 'no-cache')
      .header('etag', file.etag);
    if (request.headers['if-none-match'] === file.etag) return reply.status(304).send();
    return reply.type(file.type).send(file.body);
  };
  app.get('/app', async (_request, reply) => reply.redirect('/app/', 301));
  app.get('/app/', serve(appFiles, 'index.html'));
  for (const name of appFiles.keys()) app.get(`/app/${name}`, serve(appFiles, name));
  for (const name of portalFiles.keys()) app.get(`/portal/static/${name}`, serve(portalFiles, name));
}
