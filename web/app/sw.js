// Keeps the app's own files so that it opens, and shows codes, with no network.
// API calls always go to the network: requests and answers are never served from a cache.
const CACHE = 'radius-mfa-app-v1';
const SHELL = ['./', 'app.js', 'app.css', 'manifest.webmanifest', 'icon.svg', 'icon-192.png', 'icon-512.png'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))).then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || !url.pathname.startsWith('/app/')) return;
  // Cached copy first (works offline), refreshed from the network in the background.
  const key = new URL(url.pathname === '/app/index.html' ? '/app/' : url.pathname, url.origin).href;
  event.respondWith(
    caches.open(CACHE).then((cache) =>
      cache.match(key).then((hit) => {
        const fresh = fetch(request)
          .then((response) => {
            if (response.ok) cache.put(key, response.clone());
            return response;
          })
          .catch(() => hit || Response.error());
        if (hit) {
          event.waitUntil(fresh.then(() => undefined, () => undefined));
          return hit;
        }
        return fresh;
      }),
    ),
  );
});
