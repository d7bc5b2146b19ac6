// A plain HTTP client for the portal with a cookie jar: posts forms directly, as an attacker or a script would.
import assert from 'node:assert/strict';

export class PortalClient {
  private readonly cookies = new Map<string, string>();
  csrf = '';
  constructor(readonly base: string) {}

  async get(path: string): Promise<{ status: number; text: string; location: string | null }> {
    const r = await fetch(this.base + path, { redirect: 'manual', headers: { cookie: this.cookie } });
    this.keep(r);
    const text = await r.text();
    this.csrf = /name="_csrf" value="([^"]+)"/.exec(text)?.[1] ?? this.csrf;
    return { status: r.status, text, location: r.headers.get('location') };
  }

  async post(path: string, form: Record<string, string>, opts: { csrf?: string | null } = {}): Promise<{ status: number; text: string; location: string | null }> {
    const token = opts.csrf === undefined ? this.csrf : opts.csrf;
    const body = new URLSearchParams({ ...(token === null ? {} : { _csrf: token }), ...form });
    const r = await fetch(this.base + path, { method: 'POST', redirect: 'manual', headers: { cookie: this.cookie, 'content-type': 'application/x-www-form-urlencoded' }, body });
    this.keep(r);
    const text = await r.text();
    this.csrf = /name="_csrf" value="([^"]+)"/.exec(text)?.[1] ?? this.csrf;
    return { status: r.status, text, location: r.headers.get('location') };
  }

  /** What the jar sends: every cookie the server set and did not clear. */
  get cookie(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** Replaces the jar with one raw Cookie header (another browser's cookies). */
  set cookie(header: string) {
    this.cookies.clear();
    for (const part of header.split(';')) {
      const at = part.indexOf('=');
      if (at > 0) this.cookies.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
    }
  }

  private keep(r: Response): void {
    for (const set of r.headers.getSetCookie()) {
      const [pair, ...attributes] = set.split(';');
      const at = pair!.indexOf('=');
      const name = pair!.slice(0, at).trim();
      if (attributes.some((a) => /^\s*max-age=0\s*$/i.test(a))) this.cookies.delete(name);
      else this.cookies.set(name, pair!.slice(at + 1).trim());
    }
  }

  /** Password (+ TOTP code when asked) sign-in; asserts it ends on the settings page. */
  async signIn(username: string, password: string, code?: string): Promise<void> {
    await this.get('/portal/sign-in');
    const r = await this.post('/portal/sign-in', { username, password });
    assert.equal(r.status, 303, r.text);
    if (code !== undefined) {
      await this.get('/portal/sign-in');
      const c = await this.post('/portal/sign-in/code', { code });
      assert.equal(c.status, 303, c.text);
    }
    const home = await this.get('/portal/');
    assert.equal(home.status, 200, `not signed in: ${home.status} ${home.location}`);
  }
}

