/// <reference lib="webworker" />
/**
 * The service worker of one app: precaches the app's files at install, answers them from the cache
 * (so the app opens with no network), and never caches the API: money calls always go to the
 * platform or fail visibly. The cache name carries the build's hash; a new build replaces it.
 */
declare const __APP__: string;
declare const __VERSION__: string;
declare const __PRECACHE__: string[];

const sw = self as unknown as ServiceWorkerGlobalScope;
const CACHE = `duet-${__APP__}-${__VERSION__}`;

sw.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll(__PRECACHE__))
      .then(() => sw.skipWaiting()),
  );
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith(`duet-${__APP__}-`) && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => sw.clients.claim()),
  );
});

sw.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== sw.location.origin || url.pathname.startsWith('/v1/')) return;
  const scope = new URL(sw.registration.scope).pathname;
  if (!url.pathname.startsWith(scope)) return;
  // The page itself: the network when it answers (a fresh build), else the cached copy.
  const key = url.pathname === scope ? './' : req;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const hit = await cache.match(key, { ignoreSearch: true });
      if (hit !== undefined) return hit;
      return fetch(req);
    }),
  );
});
