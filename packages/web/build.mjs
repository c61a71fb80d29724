// Builds the three web apps for the browser into dist/apps/<app>/: one minified ES module bundle,
// its CSS, the page, the web-app manifest, an icon, and a service worker whose cache name is the
// hash of everything it precaches (so a new build replaces the old one, and the app works offline).
// Usage: node build.mjs [--watch is not offered: the build takes about a second].
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const APPS = ['console', 'wallet', 'pos'];
const out = join(here, 'dist/apps');
rmSync(out, { recursive: true, force: true });

const common = {
  bundle: true,
  format: 'esm',
  target: 'es2022',
  platform: 'browser',
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  conditions: ['duet-source'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  logLevel: 'warning',
  metafile: true,
};

const sizes = {};
for (const app of APPS) {
  const dir = join(out, app);
  mkdirSync(dir, { recursive: true });
  await build({ ...common, entryPoints: { app: join(here, 'app', app, 'main.tsx') }, outdir: dir });
  for (const f of readdirSync(join(here, 'app', app))) {
    if (/\.(html|webmanifest|svg|png)$/.test(f)) copyFileSync(join(here, 'app', app, f), join(dir, f));
  }
  if (!existsSync(join(dir, 'icon.svg'))) copyFileSync(join(here, 'app/shared/icon.svg'), join(dir, 'icon.svg'));
  // What the service worker keeps for offline use: the page and everything it loads (not maps).
  const files = readdirSync(dir).filter((f) => !f.endsWith('.map') && !f.endsWith('.txt'));
  const hash = createHash('sha256');
  for (const f of files.sort()) hash.update(f).update(readFileSync(join(dir, f)));
  const version = hash.digest('hex').slice(0, 16);
  await build({
    ...common,
    sourcemap: false,
    metafile: false,
    entryPoints: { sw: join(here, 'app/shared/sw.ts') },
    outdir: dir,
    define: {
      __APP__: JSON.stringify(app),
      __VERSION__: JSON.stringify(version),
      __PRECACHE__: JSON.stringify(['./', ...files.filter((f) => f !== 'index.html')]),
    },
  });
  let js = 0;
  let total = 0;
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.map') || f.endsWith('.txt')) continue;
    const n = readFileSync(join(dir, f)).length;
    total += n;
    if (f === 'app.js') js = n;
  }
  sizes[app] = { version, appJsBytes: js, totalBytes: total };
}
writeFileSync(join(out, 'build.json'), `${JSON.stringify(sizes, null, 2)}\n`);
if (!process.argv.includes('--quiet')) {
  for (const [app, s] of Object.entries(sizes)) {
    process.stdout.write(
      `web: ${app.padEnd(8)} ${(s.totalBytes / 1024).toFixed(1).padStart(7)} KB (app.js ${(s.appJsBytes / 1024).toFixed(1)} KB)\n`,
    );
  }
}
