// The companion app: activation, sign-in requests (approve / deny / fraud, signed with a device key
// that never leaves this browser), and offline TOTP codes. Speaks the Mobile App API (docs/mobile-api.md).
const API = '/api/v1';
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

// ---- storage: IndexedDB keeps accounts, including the non-extractable CryptoKey itself ----
function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open('radius-mfa-app', 1);
    req.onupgradeneeded = () => req.result.createObjectStore('accounts', { keyPath: 'id' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
async function tx(mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const t = db.transaction('accounts', mode);
    const result = fn(t.objectStore('accounts'));
    t.oncomplete = () => resolve(result.result);
    t.onerror = () => reject(t.error);
  });
}
const listAccounts = () => tx('readonly', (s) => s.getAll());
const saveAccount = (a) => tx('readwrite', (s) => s.put(a));
const deleteAccount = (id) => tx('readwrite', (s) => s.delete(id));

// ---- encodings ----
const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = text.toUpperCase().replace(/[\s=-]/g, '');
  const out = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const v = alphabet.indexOf(ch);
    if (v < 0) throw new Error('bad base32');
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return new Uint8Array(out);
}

// ---- TOTP (RFC 6238 over RFC 4226), computed here: no network needed ----
const HASH = { SHA1: 'SHA-1', SHA256: 'SHA-256', SHA512: 'SHA-512' };
const hmacKeys = new Map();
async function hotp(account, counter) {
  const t = account.totp;
  let key = hmacKeys.get(account.id);
  if (!key) {
    key = await crypto.subtle.importKey('raw', base32Decode(t.secret), { name: 'HMAC', hash: HASH[t.algorithm] || 'SHA-1' }, false, ['sign']);
    hmacKeys.set(account.id, key);
  }
  const msg = new DataView(new ArrayBuffer(8));
  msg.setUint32(0, Math.floor(counter / 0x100000000));
  msg.setUint32(4, counter >>> 0);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, msg.buffer));
  const off = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(bin % 10 ** t.digits).padStart(t.digits, '0');
}

// ---- API ----
async function api(method, path, body, token) {
  const res = await fetch(API + path, {
    method,
    cache: 'no-store',
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (!res.ok) {
    const err = new Error(data?.error?.message || `The server answered ${res.status}.`);
    err.code = data?.error?.code;
    err.status = res.status;
    throw err;
  }
  return data;
}

// ---- UI helpers ----
function show(view) {
  for (const v of ['requests', 'codes', 'accounts']) {
    $(`view-${v}`).hidden = v !== view;
    const tab = document.querySelector(`[data-view="${v}"]`);
    tab.setAttribute('aria-current', v === view ? 'page' : 'false');
  }
}
function say(text, kind = 'error') {
  const m = $('message');
  m.textContent = text;
  m.className = `message ${kind}`;
  m.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  m.hidden = !text;
}

// ---- activation ----
let pendingKeys;
/** The code (and account name) in an activation link, as the portal's QR code holds it, or in a typed code. */
function activationFrom(input) {
  let code = input.trim();
  let account = null;
  try {
    const u = new URL(code);
    code = u.searchParams.get('activate') || '';
    account = u.searchParams.get('account');
  } catch {
    // Not a link: a code as typed.
  }
  code = code.replace(/[\s-]/g, '');
  return /^\d{6,32}$/.test(code) ? { code, account } : undefined;
}

function prefill({ code, account }) {
  $('code').value = code;
  $('activate-for').hidden = !account;
  if (account) $('activate-for').textContent = `Activating for ${account}. Check the name of this phone, then press Activate.`;
  show('accounts');
  $('activate-button').focus();
}

async function activate(event) {
  event.preventDefault();
  const code = activationFrom($('code').value)?.code;
  const name = $('device-name').value.trim();
  if (!code) return say('Type the activation code from the portal (12 digits), or paste its link.');
  if (!name) return say('Give this phone a name, e.g. "My phone".');
  const pin = $('new-pin').value;
  if (!$('pin-box').hidden && !/^\d{4,12}$/.test(pin)) return say('Choose a PIN of 4 to 12 digits.');
  $('activate-button').disabled = true;
  try {
    // The private key is created non-extractable: it can sign here, and can never be exported or copied.
    pendingKeys ??= await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    const publicKey = b64(await crypto.subtle.exportKey('spki', pendingKeys.publicKey));
    const r = await api('POST', '/activation', { activation_code: code, device_name: name, public_key: publicKey, ...(pin ? { pin } : {}) });
    // A new TOTP secret counts only once this phone shows it can make a code from it.
    if (r.totp) await api('POST', '/totp/confirm', { code: await hotp({ id: r.device_id, totp: r.totp }, Math.floor(Date.now() / 1000 / r.totp.period)) }, r.device_token);
    await saveAccount({
      id: r.device_id,
      username: r.username,
      accountName: r.account_name,
      deviceName: name,
      token: r.device_token,
      privateKey: pendingKeys.privateKey,
      totp: r.totp || null,
      created: Date.now(),
    });
    pendingKeys = undefined;
    $('activate').reset();
    $('pin-box').hidden = true;
    $('activate-for').hidden = true;
    history.replaceState(null, '', '/app/');
    say(`Activated: ${r.account_name} (${r.username}).`, 'ok');
    await renderAccounts();
    await renderCodes();
    show('requests');
    poll();
    // The Activate tap lets the browser ask for the notification permission.
    enablePush(true);
  } catch (err) {
    if (err.code === 'PIN_REQUIRED') {
      $('pin-box').hidden = false;
      $('new-pin').focus();
      say('Your organisation requires a PIN to approve requests: choose one (or type the one you already have), then press Activate again.');
    } else if (err.code === 'WRONG_PIN') {
      $('pin-box').hidden = false;
      $('new-pin').value = '';
      $('new-pin').focus();
      say(err.message);
    } else {
      say(err.message || 'Activation failed: check the network and try again.');
    }
  } finally {
    $('activate-button').disabled = false;
  }
}

// ---- QR scan: the browser's BarcodeDetector where it reads QR codes, else jsQR on camera frames ----
function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`${src} did not load`));
    document.head.append(script);
  });
}

/** A function that returns the texts of the QR codes in the video's current frame. */
async function qrReader() {
  if ('BarcodeDetector' in window && (await BarcodeDetector.getSupportedFormats()).includes('qr_code')) {
    const detector = new BarcodeDetector({ formats: ['qr_code'] });
    return async (video) => (await detector.detect(video)).map((c) => c.rawValue);
  }
  // Loaded only when needed (it is large); the service worker keeps it for offline use.
  await loadScript('jsQR.js');
  const canvas = document.createElement('canvas');
  const context = canvas.getContext('2d', { willReadFrequently: true });
  return async (video) => {
    if (!video.videoWidth) return [];
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    context.drawImage(video, 0, 0);
    const hit = jsQR(context.getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height, { inversionAttempts: 'dontInvert' });
    return hit ? [hit.data] : [];
  };
}

async function scan() {
  const video = $('camera');
  let stream;
  let read;
  try {
    read = await qrReader();
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
  } catch {
    return say('The camera is not available: paste the code instead.');
  }
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  const stop = () => {
    stream.getTracks().forEach((t) => t.stop());
    video.hidden = true;
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && !video.hidden) {
    const found = (await read(video).catch(() => [])).map(activationFrom).find(Boolean);
    if (found) {
      stop();
      prefill(found);
      if (!found.account) say('QR code read: press Activate.', 'ok');
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  stop();
  say('No activation QR code seen: try again, or paste the code instead.');
}

// ---- accounts ----
async function renderAccounts() {
  const accounts = await listAccounts();
  const list = $('accounts');
  list.replaceChildren(
    ...accounts.map((a) => {
      const li = document.createElement('li');
      li.className = 'card';
      const p = document.createElement('p');
      p.innerHTML = '<strong></strong><br><span class="muted"></span>';
      p.querySelector('strong').textContent = `${a.accountName}: ${a.username}`;
      p.querySelector('span').textContent = `This phone: ${a.deviceName}${a.totp ? ' · codes' : ''}`;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'danger';
      remove.textContent = 'Remove from this phone';
      remove.setAttribute('aria-label', `Remove ${a.username} from this phone`);
      remove.onclick = async () => {
        try {
          await api('DELETE', '/device', undefined, a.token);
        } catch (err) {
          if (err.status !== 401) return say(`Not removed: ${err.message}`);
        }
        await deleteAccount(a.id);
        hmacKeys.delete(a.id);
        say(`${a.username} removed from this phone.`, 'ok');
        await renderAccounts();
        await renderCodes();
      };
      li.append(p, remove);
      return li;
    }),
  );
  $('title').textContent = accounts[0]?.accountName || 'Sign-in approvals';
  return accounts;
}

// ---- codes (offline) ----
async function renderCodes() {
  const accounts = (await listAccounts()).filter((a) => a.totp);
  $('no-codes').hidden = accounts.length > 0;
  const list = $('codes');
  list.replaceChildren(
    ...accounts.map((a) => {
      const li = document.createElement('li');
      li.className = 'card code';
      li.dataset.account = a.id;
      li.innerHTML = '<p class="muted label"></p><p class="otp" aria-live="off"></p><p class="countdown"></p><progress max="1" value="1"></progress>';
      li.querySelector('.label').textContent = `${a.accountName}: ${a.username}`;
      return li;
    }),
  );
  await tickCodes(accounts);
}
let codeAccounts = [];
async function tickCodes(accounts) {
  if (accounts) codeAccounts = accounts;
  const now = Date.now();
  for (const a of codeAccounts) {
    const li = document.querySelector(`#codes li[data-account="${CSS.escape(a.id)}"]`);
    if (!li) continue;
    const period = a.totp.period;
    const counter = Math.floor(now / 1000 / period);
    const left = period - Math.floor((now / 1000) % period);
    const code = await hotp(a, counter);
    const half = a.totp.digits / 2;
    li.querySelector('.otp').textContent = `${code.slice(0, half)} ${code.slice(half)}`;
    li.querySelector('.otp').dataset.code = code;
    li.querySelector('.countdown').textContent = `New code in ${left} s`;
    li.querySelector('progress').value = left / period;
  }
}

// ---- notifications: Web Push when the server has a VAPID key and the browser a push service ----
const b64urlBytes = (text) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
const sameBytes = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * {token} to register, or {why} the app polls instead (and {offer} when a tap could turn notifications on).
 * renew: the server was told this browser's subscription is gone, so make a new one.
 */
async function pushSubscription(ask, renew) {
  if (!('PushManager' in window) || !('Notification' in window) || !('serviceWorker' in navigator)) return { why: 'this browser has no push notifications' };
  const { vapid_public_key: key } = await api('GET', '/web-push');
  if (!key) return { why: 'the server sends no notifications' };
  if (Notification.permission === 'default' && ask) await Notification.requestPermission();
  if (Notification.permission !== 'granted') {
    return { why: Notification.permission === 'denied' ? 'notifications are blocked for this site' : 'notifications are off', offer: Notification.permission === 'default' };
  }
  const registration = await navigator.serviceWorker.ready;
  const serverKey = b64urlBytes(key);
  let subscription = await registration.pushManager.getSubscription();
  // Made for an earlier VAPID key (the push service would refuse pushes signed with the new one), or
  // reported gone by the push service while this browser still hands it out.
  const subscribedKey = subscription?.options?.applicationServerKey;
  if (subscription && (renew || (subscribedKey && !sameBytes(new Uint8Array(subscribedKey), serverKey)))) {
    await subscription.unsubscribe();
    subscription = null;
  }
  try {
    subscription ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey });
  } catch {
    return { why: 'no push service is reachable from this browser' };
  }
  return { token: `webpush:${JSON.stringify(subscription)}` };
}

/** Registers this browser's subscription (or none: poll) for every account; polling goes on either way, as a push may be lost. */
async function enablePush(ask) {
  let state;
  try {
    const accounts = await listAccounts();
    if (accounts.length === 0) return;
    const stale = await Promise.all(accounts.map((a) => api('GET', '/device', undefined, a.token).then((d) => d.push_token_state === 'stale', () => false)));
    state = await pushSubscription(ask, stale.includes(true));
    const token = state.token ?? null;
    for (const [i, a] of accounts.entries()) {
      if ((a.pushToken ?? null) === token && !stale[i]) continue;
      await api('POST', '/push-token', { push_token: token }, a.token);
      await saveAccount({ ...a, pushToken: token });
    }
  } catch {
    state = { why: 'the server could not be reached' };
  }
  $('delivery').textContent = state.why
    ? `This app checks for sign-in requests while it is open: ${state.why}.`
    : 'Notifications are on: sign-in requests reach this phone even when the app is closed.';
  $('notify').hidden = !state.offer;
}

// ---- sign-in requests ----
const shown = new Map();
let polling = false;
let woken = false;
let wakePoll;
/** A push arrived: poll now rather than at the next tick. */
function pollNow() {
  woken = true;
  wakePoll?.();
}
async function poll() {
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      const accounts = await listAccounts();
      if (accounts.length === 0) break;
      const seen = new Set();
      let offline = false;
      for (const a of accounts) {
        try {
          for (const r of await api('GET', '/pending', undefined, a.token)) {
            seen.add(r.id);
            if (!shown.has(r.id)) addRequest(a, r);
          }
        } catch (err) {
          if (err.status === 401) say(`${a.username}: this phone is no longer activated on the server. Remove the account and activate again.`);
          else if (!err.status) offline = true;
        }
      }
      $('net').hidden = !offline;
      for (const [id, entry] of shown) if (!seen.has(id) && !entry.answered && !offline) dropRequest(id, 'This request is no longer waiting.');
      $('no-requests').hidden = [...shown.values()].some((e) => !e.done);
      if (!woken) await new Promise((r) => ((wakePoll = r), setTimeout(r, POLL_MS)));
      woken = false;
    }
  } finally {
    polling = false;
  }
}

function addRequest(account, r) {
  const li = $('request-template').content.firstElementChild.cloneNode(true);
  li.dataset.request = r.id;
  li.querySelector('.req-title').textContent = `Sign-in as ${r.username}`;
  li.querySelector('.req-client').textContent = r.nas_identifier && r.nas_identifier !== r.client ? `${r.client} (${r.nas_identifier})` : r.client;
  li.querySelector('.req-from').textContent = [r.calling_station, r.nas_ip && `via ${r.nas_ip}`].filter(Boolean).join(' ') || 'unknown';
  li.querySelector('.req-time').textContent = new Date(r.time).toLocaleTimeString();
  if (r.number) {
    li.querySelector('.number-box').hidden = false;
    li.querySelector('.req-number').textContent = r.number;
  }
  if (r.pin_required) li.querySelector('.pin-box').hidden = false;
  const entry = { li, account, request: r, answered: false, done: false };
  li.querySelector('.approve').onclick = () => answer(entry, 'approve');
  li.querySelector('.deny').onclick = () => answer(entry, 'deny');
  li.querySelector('.fraud').onclick = () => answer(entry, 'fraud');
  shown.set(r.id, entry);
  $('requests').prepend(li);
  $('no-requests').hidden = true;
  tickRequests();
  show('requests');
  li.querySelector('.approve').focus();
}

function dropRequest(id, text) {
  const entry = shown.get(id);
  if (!entry || entry.done) return;
  entry.done = true;
  entry.li.querySelector('.req-result').textContent = text;
  entry.li.querySelectorAll('button, input').forEach((b) => (b.disabled = true));
  entry.li.classList.add('finished');
}

const RESULT_TEXT = {
  approved: 'Approved. You can go back to the sign-in.',
  denied: 'Denied. Nobody signs in with it.',
  fraud_reported: 'Reported. The account is locked until your helpdesk unlocks it; tell them about it.',
};

async function answer(entry, decision) {
  const r = entry.request;
  const pinInput = entry.li.querySelector('.req-pin');
  const pin = pinInput.value;
  if (decision === 'approve' && r.pin_required && !/^\d{4,12}$/.test(pin)) {
    entry.li.querySelector('.req-result').textContent = 'Type your PIN to approve.';
    pinInput.focus();
    return;
  }
  entry.li.querySelectorAll('button').forEach((b) => (b.disabled = true));
  try {
    // The Mobile App API verifies an ECDSA P-256 / SHA-256 signature (IEEE P1363, WebCrypto's form) over "{id}.{decision}".
    const signature = b64(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, entry.account.privateKey, new TextEncoder().encode(`${r.id}.${decision}`)));
    const res = await api('POST', `/requests/${encodeURIComponent(r.id)}/answer`, { decision, signature, ...(decision === 'approve' && r.pin_required ? { pin } : {}) }, entry.account.token);
    entry.answered = true;
    dropRequest(r.id, RESULT_TEXT[res.status] || res.status);
  } catch (err) {
    entry.li.querySelector('.req-result').textContent = err.message || 'Not sent: check the network and try again.';
    if (err.code === 'WRONG_PIN' || err.code === 'PIN_REQUIRED' || !err.status) {
      entry.li.querySelectorAll('button').forEach((b) => (b.disabled = false));
      pinInput.value = '';
    } else {
      entry.answered = true;
      dropRequest(r.id, err.message);
    }
  }
}

function tickRequests() {
  const now = Date.now();
  for (const [id, entry] of shown) {
    if (entry.done) continue;
    const left = Math.max(0, Math.ceil((Date.parse(entry.request.expires) - now) / 1000));
    entry.li.querySelector('.countdown').textContent = `Expires in ${left} s`;
    if (left === 0) dropRequest(id, 'Expired.');
  }
}

// ---- start ----
async function start() {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js', { scope: '/app/' }).catch(() => undefined);
    navigator.serviceWorker.addEventListener('message', (event) => event.data?.type === 'push' && pollNow());
  }
  document.querySelectorAll('nav [data-view]').forEach((b) => (b.onclick = () => show(b.dataset.view)));
  $('activate').addEventListener('submit', activate);
  $('device-name').value = /Android/.test(navigator.userAgent) ? 'Android phone' : /iPhone|iPad/.test(navigator.userAgent) ? 'iPhone' : 'My phone';
  if (navigator.mediaDevices?.getUserMedia) {
    $('scan').hidden = false;
    $('scan').onclick = scan;
  }
  $('notify').onclick = () => enablePush(true);
  const params = new URLSearchParams(location.search);
  const accounts = await renderAccounts();
  await renderCodes();
  const link = activationFrom(location.href);
  if (link) prefill(link);
  else show(accounts.length ? (params.get('view') || 'requests') : 'accounts');
  window.addEventListener('online', () => ($('net').hidden = true));
  window.addEventListener('offline', () => ($('net').hidden = false));
  $('net').hidden = navigator.onLine;
  setInterval(() => {
    tickRequests();
    tickCodes().catch(() => undefined);
  }, 1000);
  document.body.dataset.ready = 'true';
  poll();
  enablePush(false);
}

start().catch((err) => say(`The app could not start: ${err.message}`));
