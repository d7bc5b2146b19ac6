// Server-rendered portal pages: plain HTML, every input labelled, one <main>, errors in role="alert".
import type { DeviceRecord } from '../store/store.js';

/** HTML-escapes text for element content and double-quoted attributes. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Marks already-safe HTML (a fragment built by these functions, or qrcode's SVG). */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

/** Tagged template: interpolations are escaped unless they are Html (or arrays of Html). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return new Html(out);
}

function render(v: unknown): string {
  if (v instanceof Html) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v === undefined || v === null || v === false) return '';
  return esc(v);
}

export interface PageOptions {
  title: string;
  /** Shown in the header with a sign-out button when set. */
  username?: string;
  csrf?: string;
  accountName: string;
  message?: { kind: 'ok' | 'error'; text: string };
}

export function page(opts: PageOptions, body: Html): string {
  return `<!doctype html>\n${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · ${opts.accountName}</title>
<link rel="stylesheet" href="/portal/static/portal.css">
<script src="/portal/static/portal.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
  <p class="brand">${opts.accountName} <span>sign-in settings</span></p>
  ${opts.username && opts.csrf ? html`<form method="post" action="/portal/sign-out" class="inline"><input type="hidden" name="_csrf" value="${opts.csrf}"><span class="who">${opts.username}</span> <button type="submit" class="link">Sign out</button></form>` : ''}
</header>
<main id="main">
<h1>${opts.title}</h1>
${opts.message ? html`<p class="${opts.message.kind}" role="${opts.message.kind === 'error' ? 'alert' : 'status'}">${opts.message.text}</p>` : ''}
${body}
</main>
</body>
</html>`.value}\n`;
}

export const csrfField = (csrf: string) => html`<input type="hidden" name="_csrf" value="${csrf}">`;

export function signInForm(csrf: string, username = ''): Html {
  return html`<form method="post" action="/portal/sign-in" class="card">
  ${csrfField(csrf)}
  <label for="username">Username</label>
  <input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${username}" autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit">Sign in</button>
</form>`;
}

export function secondFactorForm(csrf: string, factors: { totp: boolean; push: boolean }): Html {
  return html`${
    factors.totp
      ? html`<form method="post" action="/portal/sign-in/code" class="card">
  ${csrfField(csrf)}
  <label for="code">Code from your authenticator app</label>
  <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,9}" maxlength="9" required autofocus aria-describedby="code-help">
  <p id="code-help" class="help">The 6- or 8-digit code your app shows now.</p>
  <button type="submit">Verify</button>
</form>`
      : ''
  }
${
  factors.push
    ? html`<form method="post" action="/portal/sign-in/push" class="card">
  ${csrfField(csrf)}
  <p>${factors.totp ? 'Or approve the sign-in on your phone.' : 'Approve the sign-in on your phone.'}</p>
  <button type="submit" ${factors.totp ? html`class="secondary"` : html`autofocus`}>Send a request to my phone</button>
</form>`
    : ''
}
<form method="post" action="/portal/sign-in/cancel" class="inline">${csrfField(csrf)}<button type="submit" class="link">Start again</button></form>`;
}

export function pushWaiting(csrf: string, numberMatching: boolean): Html {
  return html`<div class="card" data-push-wait="/portal/sign-in/push/status">
  <p id="push-status" role="status" aria-live="polite">A sign-in request was sent to your phone. Open the app and approve it.</p>
  <form method="post" action="/portal/sign-in/push/complete" id="push-complete">
    ${csrfField(csrf)}
    ${
      numberMatching
        ? html`<label for="number">Number shown in the app</label>
    <input id="number" name="number" inputmode="numeric" pattern="[0-9]{2,3}" maxlength="3" required autocomplete="off" autofocus>`
        : ''
    }
    <button type="submit">${numberMatching ? 'Continue' : 'I approved it: continue'}</button>
  </form>
</div>
<form method="post" action="/portal/sign-in/cancel" class="inline">${csrfField(csrf)}<button type="submit" class="link">Start again</button></form>`;
}

export interface AccountView {
  csrf: string;
  username: string;
  method: string;
  methodSource: string;
  totpEnrolled: boolean;
  devices: DeviceRecord[];
  pin: 'off' | 'optional' | 'required';
  pinSet: boolean;
  allowEnrollment: boolean;
  allowMethodSelection: boolean;
  allowActivation: boolean;
  allowedMethods: readonly string[];
}

const METHOD_TEXT: Record<string, string> = {
  push: 'Approve a request on my phone',
  auto: 'Code if I type one, else a request on my phone',
  totp: 'Type a code after my password',
  challenge: 'Type my password, then a code when asked',
  none: 'Password only',
  deny: 'Sign-in disabled',
};

export function accountPage(v: AccountView): Html {
  const devices = v.devices.length
    ? html`<ul class="devices">${v.devices.map(
        (d) => html`<li><span><strong>${d.name}</strong><br><small>Activated ${new Date(d.createdAt).toISOString().slice(0, 10)}${d.lastSeenAt ? html`, last seen ${new Date(d.lastSeenAt).toISOString().slice(0, 16).replace('T', ' ')} UTC` : ''}</small></span>
  <form method="post" action="/portal/devices/${encodeURIComponent(d.id)}/remove" class="inline">${csrfField(v.csrf)}<button type="submit" class="danger" aria-label="Remove ${d.name}">Remove</button></form></li>`,
      )}</ul>`
    : html`<p>No phone is activated.</p>`;

  return html`<section aria-labelledby="h-method" class="card">
  <h2 id="h-method">How you sign in to the VPN</h2>
  <p>${METHOD_TEXT[v.method] ?? v.method}${v.methodSource === 'user' ? '' : ' (set by your administrator)'}.</p>
  ${
    v.allowMethodSelection
      ? html`<form method="post" action="/portal/method">
    ${csrfField(v.csrf)}
    <fieldset><legend>Choose your method</legend>
    ${v.allowedMethods.map((m) => html`<label class="choice"><input type="radio" name="method" value="${m}" ${m === v.method ? html`checked` : ''}> ${METHOD_TEXT[m] ?? m}</label>`)}
    </fieldset>
    <button type="submit">Save method</button>
  </form>`
      : ''
  }
</section>
<section aria-labelledby="h-totp" class="card">
  <h2 id="h-totp">Authenticator app (codes)</h2>
  <p>${v.totpEnrolled ? 'An authenticator app is set up.' : 'No authenticator app is set up.'}</p>
  ${
    v.allowEnrollment
      ? html`<form method="post" action="/portal/totp/start">${csrfField(v.csrf)}<button type="submit">${v.totpEnrolled ? 'Replace with a new authenticator' : 'Set up an authenticator app'}</button></form>`
      : html`<p class="help">Ask your helpdesk to set one up.</p>`
  }
</section>
<section aria-labelledby="h-devices" class="card">
  <h2 id="h-devices">Phones for sign-in requests</h2>
  ${devices}
  ${
    v.allowActivation
      ? html`<form method="post" action="/portal/activation">
    ${csrfField(v.csrf)}
    <label class="choice"><input type="checkbox" name="with_totp" value="1" checked> Also use the app for codes when offline</label>
    <button type="submit">Activate the app on a phone</button>
  </form>`
      : ''
  }
</section>
${
  v.pin !== 'off'
    ? html`<section aria-labelledby="h-pin" class="card">
  <h2 id="h-pin">Approval PIN</h2>
  <p>${v.pinSet ? 'A PIN is set.' : v.pin === 'required' ? 'A PIN is required to approve requests, and none is set.' : 'No PIN is set (optional).'}</p>
  <form method="post" action="/portal/pin">
    ${csrfField(v.csrf)}
    ${v.pinSet ? html`<label for="current_pin">Current PIN</label><input id="current_pin" name="current_pin" type="password" inputmode="numeric" pattern="[0-9]{4,12}" required autocomplete="off">` : ''}
    <label for="pin">New PIN (4 to 12 digits)</label>
    <input id="pin" name="pin" type="password" inputmode="numeric" pattern="[0-9]{4,12}" required autocomplete="off">
    <label for="pin2">New PIN again</label>
    <input id="pin2" name="pin2" type="password" inputmode="numeric" pattern="[0-9]{4,12}" required autocomplete="off">
    <button type="submit">${v.pinSet ? 'Change PIN' : 'Set PIN'}</button>
  </form>
</section>`
    : ''
}`;
}

export function totpEnrollPage(csrf: string, qrSvg: string, secretText: string, uri: string, replacing: boolean): Html {
  return html`<div class="card">
  <ol>
    <li>Open your authenticator app and add an account by scanning this QR code.</li>
    <li>Type the code it shows below. ${replacing ? 'Your current authenticator keeps working until you do.' : ''}</li>
  </ol>
  <figure class="qr" aria-label="QR code of the authenticator secret">${new Html(qrSvg)}</figure>
  <p>Cannot scan? Type this key into the app (time-based):</p>
  <p><code id="totp-secret" class="secret">${secretText}</code></p>
  <p class="help"><a href="${uri}">Open in an authenticator app on this device</a></p>
  <form method="post" action="/portal/totp/confirm">
    ${csrfField(csrf)}
    <label for="code">Code from the app</label>
    <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,9}" maxlength="9" required>
    <button type="submit">Confirm</button>
  </form>
  <p><a href="/portal/">Cancel</a></p>
</div>`;
}

export function activationPage(qrSvg: string, code: string, link: string, expires: string, accountName: string): Html {
  return html`<div class="card">
  <ol>
    <li>On your phone, scan this QR code with the camera (it opens the ${accountName} app), or open the app and type the code.</li>
    <li>Keep this page open until the phone says it is activated.</li>
  </ol>
  <figure class="qr" aria-label="QR code to activate the app">${new Html(qrSvg)}</figure>
  <p>Activation code: <strong id="activation-code" class="secret">${code}</strong></p>
  <p class="help">Works once, until ${expires.slice(0, 16).replace('T', ' ')} UTC. Link: <a id="activation-link" href="${link}">${link}</a></p>
  <p><a href="/portal/">Back to your settings</a></p>
</div>`;
}

export function messagePage(text: string, backHref = '/portal/'): Html {
  return html`<p class="error" role="alert">${text}</p><p><a href="${backHref}">Back</a></p>`;
}
