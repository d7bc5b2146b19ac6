// Real headless Chromium (Debian's /usr/bin/chromium, installed by scripts/install-test-deps.sh) driven by
// playwright-core. A fresh profile per launch; the flags keep Chromium off the network except for loopback.
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface LaunchOptions {
  /** A Y4M video that Chromium's fake camera shows (looped); camera prompts are granted without asking. */
  fakeCamera?: string;
}

/** Launches Chromium (playwright gives each launch a new empty --user-data-dir). */
export async function launchBrowser(options: LaunchOptions = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run scripts/install-test-deps.sh (Debian package chromium)`);
  const camera = options.fakeCamera ? ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${options.fakeCamera}`] : [];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...FLAGS, ...camera], timeout: 30_000 });
}

/** A phone-sized context: 390x844 at 2x, touch, as a mid-size phone. */
export async function phoneContext(browser: Browser): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'en-US', timezoneId: 'UTC' });
  context.setDefaultTimeout(10_000);
  return context;
}

/** docs/screenshots/ with SCREENSHOTS=1 (to refresh the committed ones), else a temp folder: runs leave the tree clean. */
export const SCREENSHOTS = process.env.SCREENSHOTS === '1' ? fileURLToPath(new URL('../../docs/screenshots/', import.meta.url)) : join(tmpdir(), 'radius-mfa-screenshots');

/** Saves a full-page screenshot as <name>.png in SCREENSHOTS. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Collects page errors and console errors so a test can assert there were none. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(`console: ${m.text()}`);
  });
  return errors;
}
