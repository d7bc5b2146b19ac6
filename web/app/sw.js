// Keeps the app's own files so that it opens, and shows codes, with no network.
// API calls always go to the network: requests and answers are never served from a cache.
// Shows a notification for each Web Push (a sign-in waiting for an answer).
const CACHE = 'radius-mfa-app-v2';
const SHELL = ['./', 'app.js', 'app.css', 'manifest.webmanifest', 'icon.svg', 'icon-192.png', 'icon-512.png', 'jsQR.js'];

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

// The push carries only {request_id, text}; the app fetches who, where and from which VPN.
self.addEventListener('push', (event) => {
  let message = {};
  try {
    message = event.data?.json() ?? {};
  } catch {
    // Unreadable: still a sign-in to look at.
  }
  event.waitUntil(
    Promise.all([
      // userVisibleOnly: every push must show a notification.
      self.registration.showNotification('Approve sign-in?', {
        body: message.text || 'Sign-in request',
        tag: message.request_id || 'sign-in',
        data: { request_id: message.request_id },
        icon: 'icon-192.png',
        requireInteraction: true,
      }),
      // An open app fetches the request at once instead of at its next poll.
      self.clients
        .matchAll({ type: 'window', includeUncontrolled: true })
        .then((windows) => windows.forEach((w) => w.postMessage({ type: 'push', request_id: message.request_id }))),
    ]),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const scope = self.registration.scope;
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
      const app = windows.find((w) => w.url.startsWith(scope));
      return app ? app.focus() : self.clients.openWindow(scope);
    }),
  );
});
