/**
 * @duet/web, the Node side: where the built web apps are, and a files route that mounts them on the
 * platform's server (`duet serve`, `duet demo`). The apps themselves are in app/ and are built for
 * the browser by build.mjs into dist/apps/.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifySchema } from 'fastify';

/** The three apps, each under its own path (and so its own service-worker scope). */
export const WEB_APPS = ['console', 'wallet', 'pos'] as const;
export type WebApp = (typeof WEB_APPS)[number];

/** Where build.mjs writes the apps: dist/apps/<app>/. */
export { type Demo, type DemoOptions, type DemoTerminal, DEMO_PASSWORD, DEMO_SEED, demoDatabase, startDemo } from './demo.js';

export { enrolledWallet } from './headless.js';

export const WEB_DIST = fileURLToPath(new URL('../dist/apps/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

/** Every file of the built apps, read once: a few hundred kilobytes, served from memory. */
export function loadWebAssets(dir: string = WEB_DIST): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(dir)) return assets;
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else {
        const body = readFileSync(p);
        const url = `/${relative(dir, p).split(sep).join('/')}`;
        const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
        assets.set(url, { body, type: TYPES[extname(p)] ?? 'application/octet-stream', etag });
      }
    }
  };
  walk(dir);
  return assets;
}

/**
 * Mounts the apps at /console/, /wallet/ and /pos/ (and / leads to the console). Every answer is
 * `no-cache` with an ETag: the service workers keep the apps for offline use, and an updated build
 * reaches them at the next online start. Returns false when the apps were not built.
 */
/** Kept out of /openapi.json (the swagger plugin reads `hide`). */
const HIDDEN = { schema: { hide: true } as FastifySchema };

export function serveWebApps(app: FastifyInstance, dir: string = WEB_DIST): boolean {
  const assets = loadWebAssets(dir);
  if (assets.size === 0) return false;
  app.get('/', HIDDEN, (_req, reply) => reply.redirect('/console/'));
  for (const name of WEB_APPS) {
    app.get(`/${name}`, HIDDEN, (_req, reply) => reply.redirect(`/${name}/`));
    app.get(`/${name}/*`, HIDDEN, (req, reply) => {
      const path = new URL(req.url, 'http://x').pathname;
      const asset = assets.get(path.endsWith('/') ? `${path}index.html` : path);
      if (asset === undefined) {
        return reply.code(404).type('text/plain; charset=utf-8').send('Not found / 未找到\n');
      }
      reply.header('cache-control', 'no-cache').header('etag', asset.etag).header('x-content-type-options', 'nosniff');
      if (asset.type.startsWith('text/html')) {
        reply.header(
          'content-security-policy',
          "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; style-src 'self' 'unsafe-inline'; connect-src 'self'; worker-src 'self'; frame-ancestors 'none'",
        );
      }
      if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
      return reply.type(asset.type).send(asset.body);
    });
  }
  return true;
}
