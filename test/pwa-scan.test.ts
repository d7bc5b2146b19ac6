// Activation by scanning the portal's QR code with the camera, in real headless Chromium: its fake
// camera plays a Y4M file showing the activation link's QR code. Chromium on Linux has no
// BarcodeDetector, so this is the jsQR path.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import QRCode from 'qrcode';
import { hashPassword } from '../src/auth/password-hash.js';
import { createActivation } from '../src/mfa/activation.js';
import { launchBrowser, phoneContext, watchErrors } from './helpers/browser.js';
import { startTestServer } from './helpers/server.js';

const WIDTH = 640;
const HEIGHT = 480;

/** One 640x480 YUV 4:2:0 frame: black modules on white, 8 pixels each, centred (quiet zone included). */
function qrFrame(text: string): Buffer {
  const { modules } = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const scale = 8;
  const side = modules.size * scale;
  assert.ok(side + 8 * scale <= HEIGHT, `QR of ${modules.size} modules fits with its quiet zone`);
  const left = (WIDTH - side) >> 1;
  const top = (HEIGHT - side) >> 1;
  const y = Buffer.alloc(WIDTH * HEIGHT, 255);
  for (let row = 0; row < side; row++) {
    for (let col = 0; col < side; col++) {
      if (modules.get(Math.floor(row / scale), Math.floor(col / scale))) y[(top + row) * WIDTH + left + col] = 0;
    }
  }
  // No colour: both chroma planes at their midpoint.
  const chroma = Buffer.alloc((WIDTH / 2) * (HEIGHT / 2) * 2, 128);
  return Buffer.concat([y, chroma]);
}

/** A Y4M file (the format Chromium's --use-file-for-fake-video-capture reads) of that one frame. */
function writeY4m(path: string, frame: Buffer): void {
  writeFileSync(path, Buffer.concat([Buffer.from(`YUV4MPEG2 W${WIDTH} H${HEIGHT} F30:1 Ip A1:1 C420jpeg\nFRAME\n`), frame]));
}

let dir: string;
let browser: Browser | undefined;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'radius-mfa-scan-'));
});
after(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('"Scan QR code" reads the activation QR from the camera: the app shows the account, and Activate completes', async (t) => {
  const server = await startTestServer({
    start: Date.now(),
    config: { http: { listen: '127.0.0.1:0' }, mobile_app: { account_name: 'Contoso VPN' }, mfa: { default_method: 'push' } },
  });
  t.after(() => server.close());
  await server.store.addUser({ username: 'alice', passwordHash: await hashPassword('alice-pw') });
  const base = `http://127.0.0.1:${server.httpPort}`;
  const activation = await createActivation(server.store, server.config, 'alice', server.clock.now());
  // The portal's link: the config's http.listen says port 0, the portal shows the bound port.
  const payload = new URL(activation.qr_payload);
  const link = `${base}${payload.pathname}${payload.search}`;
  const video = join(dir, 'activation-qr.y4m');
  writeY4m(video, qrFrame(link));

  browser = await launchBrowser({ fakeCamera: video });
  const context = await phoneContext(browser);
  t.after(() => context.close().catch(() => undefined));
  await context.grantPermissions(['camera'], { origin: base });
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(`${base}/app/`);
  await page.getByRole('heading', { name: 'Add an account' }).waitFor();
  assert.equal(await page.evaluate("'BarcodeDetector' in window"), false, 'this Chromium has no BarcodeDetector: jsQR reads the frames');

  await page.getByRole('button', { name: 'Scan QR code' }).click();
  await page.getByText('Activating for Contoso VPN. Check the name of this phone, then press Activate.').waitFor();
  assert.equal(await page.getByLabel('Activation code or link').inputValue(), activation.activation_code.replace(/-/g, ''));
  assert.equal(await page.locator('#camera').isHidden(), true, 'the camera is off once the code is read');
  assert.equal(await page.evaluate('typeof jsQR'), 'function');

  await page.getByLabel('Name of this phone').fill('Scanned phone');
  await page.getByRole('button', { name: 'Activate' }).click();
  await page.getByText('Activated: Contoso VPN (alice).').waitFor();
  assert.deepEqual((await server.store.devices.list('alice')).map((d) => d.name), ['Scanned phone']);
  assert.deepEqual(errors, []);
});
