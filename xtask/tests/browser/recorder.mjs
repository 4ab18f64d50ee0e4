// Drives the web recorder in headless Chromium with a fake microphone, against `cargo xtask
// local`. Prints one JSON object with what it saw; the Rust test asserts on it and on what the
// emulator stored. Usage: node recorder.mjs <service url> <wav file> <chromium> <screenshot dir>,
// with PLAYWRIGHT_CORE and AXE_CORE naming the installed packages' directories.
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';

const { chromium } = await import(path.join(process.env.PLAYWRIGHT_CORE, 'index.mjs'));

const [url, wav, executablePath, shots] = process.argv.slice(2);
const seen = { pageErrors: [], consoleErrors: [], dialogs: [], stagingPuts: 0 };

// The tests' identity provider on IDP_PORT: its JWKS, and an authorization endpoint that sends
// the browser back with an RS256 ID token for user `carol` (the OpenID Connect implicit flow).
// `idp.mode` makes it answer with another nonce or state, as a forged or stale answer would.
const idp = { mode: 'good' };
const idpPort = Number(process.env.IDP_PORT);
const issuer = `http://127.0.0.1:${idpPort}`;
const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const b64url = (data) => Buffer.from(data).toString('base64url');
const idpServer = http.createServer((request, response) => {
  const at = new URL(request.url, issuer);
  if (at.pathname === '/jwks') {
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' };
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys: [jwk] }));
    return;
  }
  const q = at.searchParams;
  const now = Math.floor(Date.now() / 1000);
  const nonce = idp.mode === 'bad-nonce' ? 'not-' + q.get('nonce') : q.get('nonce');
  const state = idp.mode === 'bad-state' ? 'not-' + q.get('state') : q.get('state');
  const header = b64url(JSON.stringify({ alg: 'RS256', kid: 'test-key', typ: 'JWT' }));
  const claims = b64url(JSON.stringify({
    iss: issuer, aud: q.get('client_id'), sub: 'carol', iat: now, exp: now + 300, nonce,
    jti: crypto.randomUUID(),
  }));
  const signature = b64url(crypto.sign('sha256', Buffer.from(`${header}.${claims}`), privateKey));
  const fragment = new URLSearchParams({ id_token: `${header}.${claims}.${signature}`, state });
  response.writeHead(302, { location: `${q.get('redirect_uri')}#${fragment}` });
  response.end();
});
await new Promise((ready) => idpServer.listen(idpPort, '127.0.0.1', ready));

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`, '--autoplay-policy=no-user-gesture-required',
  ],
});

async function session(permissions, width = 1024) {
  const context = await browser.newContext({ permissions, viewport: { width, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') seen.consoleErrors.push(m.text()); });
  page.on('dialog', async (d) => {
    seen.dialogs.push({ type: d.type(), message: d.message() });
    if (d.type() === 'confirm') await d.accept(); else await d.dismiss();
  });
  page.on('request', async (r) => {
    if (r.method() === 'PUT' && r.url().includes('/staging/')) {
      seen.stagingPuts += 1;
      // What the browser really sends (the first: the 6 s take), to hold against what was signed.
      if (seen.stagingPuts === 1) seen.stagingPut = { url: r.url(), headers: await r.allHeaders() };
    }
  });
  return { context, page };
}

async function signIn(page, name) {
  const started = Date.now();
  await page.goto(url + '/');
  await page.waitForSelector('body[data-ready="true"]');
  seen.interactiveMs = seen.interactiveMs ?? Date.now() - started;
  if (!seen.signedOutShot) {
    await page.screenshot({ path: `${shots}/recorder-signed-out.png` });
    seen.signedOutShot = true;
  }
  await page.fill('#demo-name', name);
  await page.click('#demo-signin');
  await page.waitForSelector('#recorder:not([hidden])');
}

async function record(page, seconds, name) {
  await page.click('#record');
  await page.waitForSelector('#stop:not([disabled])');
  await page.waitForTimeout(seconds * 1000);
  if (!seen.recordingShot) {
    await page.screenshot({ path: `${shots}/recorder-recording.png` });
    seen.recordingShot = true;
  }
  seen.level = Math.max(seen.level ?? 0, await page.$eval('#level', (m) => m.value));
  await page.click('#stop');
  await page.waitForSelector('#take:not([hidden])');
  if (name !== undefined) await page.fill('#file-name', name);
  const fileName = await page.inputValue('#file-name');
  const size = await page.evaluate(() => document.getElementById('status').textContent);
  const stopped = Date.now();
  await page.click('#upload');
  await page.waitForFunction((n) => [...document.querySelectorAll('#list li .name')].some((e) => e.textContent === n), fileName);
  const id = await page.$eval('#list li', (li) => li.dataset.id);
  return { fileName, id, status: size, stopToListedMs: Date.now() - stopped };
}

try {
  const { page } = await session(['microphone']);
  await signIn(page, 'alice');
  await page.screenshot({ path: `${shots}/recorder-signed-in.png` });

  seen.direct = await record(page, 2);
  seen.type = await page.evaluate(() => document.querySelector('#preview') && MediaRecorder.isTypeSupported('audio/webm;codecs=opus'));

  // Play it: the audio element knows its duration and its time advances.
  await page.click(`#list li[data-id="${seen.direct.id}"] button:has-text("Play")`);
  await page.waitForFunction(() => document.getElementById('player').currentTime > 0.3, null, { timeout: 15000 });
  seen.played = await page.$eval('#player', (p) => ({ currentTime: p.currentTime, duration: p.duration, src: p.src }));

  // Download: the attachment URL.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click(`#list li[data-id="${seen.direct.id}"] button:has-text("Download")`),
  ]);
  seen.download = { suggested: download.suggestedFilename() };

  // A name that is HTML stays text.
  seen.xss = await record(page, 1, '<img src=x onerror=alert(1)>.webm');
  seen.xss.shown = await page.$eval(`#list li[data-id="${seen.xss.id}"] .name`, (e) => e.textContent);
  seen.xss.images = await page.$$eval('#list img', (imgs) => imgs.length);

  // Larger than the direct limit: the presigned path, with progress.
  seen.large = await record(page, 6);
  seen.large.progress = await page.$eval('#progress', (p) => p.value);
  // The budget's 1 MiB take, from Stop (the take in hand) to listed: the page's own upload path.
  seen.oneMiB = await page.evaluate(async () => {
    take = { blob: new Blob([new Uint8Array(1024 * 1024)], { type: 'audio/webm' }), type: 'audio/webm', url: '' };
    document.getElementById('file-name').value = 'one-mib.webm';
    const started = performance.now();
    await upload();
    const listed = [...document.querySelectorAll('#list li .name')].some((e) => e.textContent === 'one-mib.webm');
    return { ms: performance.now() - started, listed };
  });
  await page.screenshot({ path: `${shots}/recorder-list.png` });
  await page.setViewportSize({ width: 640, height: 720 });
  await page.screenshot({ path: `${shots}/recorder-list.jpg`, type: 'jpeg', quality: 60 });
  await page.setViewportSize({ width: 1024, height: 800 });

  // Delete the first (confirmed).
  await page.click(`#list li[data-id="${seen.direct.id}"] button:has-text("Delete")`);
  await page.waitForFunction((id) => !document.querySelector(`#list li[data-id="${id}"]`), seen.direct.id);
  seen.deleted = seen.direct.id;

  // A delete whose answer is lost: it reaches the service (which deletes), then the connection
  // drops. The page offers Retry; the retry hears 404, and the row goes as deleted.
  await page.route(`**/record/${seen.xss.id}`, async (route) => {
    if (route.request().method() !== 'DELETE') return route.continue();
    seen.lostDelete = { firstAnswer: (await route.fetch()).status() };
    await route.abort('connectionreset');
  }, { times: 1 });
  await page.click(`#list li[data-id="${seen.xss.id}"] button:has-text("Delete")`);
  await page.waitForSelector('#retry:not([hidden])');
  seen.lostDelete.error = await page.textContent('#error');
  await page.click('#retry');
  await page.waitForFunction((id) => !document.querySelector(`#list li[data-id="${id}"]`), seen.xss.id);
  seen.lostDelete.status = await page.textContent('#status');
  seen.lostDelete.errorShown = await page.isVisible('#error');

  // A phone-sized window works too.
  const narrow = await session(['microphone'], 360);
  await signIn(narrow.page, 'bob');
  seen.narrowOverflow = await narrow.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);

  // Signing out everywhere from a second session: the first returns to sign-in on its next call.
  const second = await session(['microphone']);
  await signIn(second.page, 'alice');
  await second.page.click('#logout-all');
  await second.page.waitForSelector('#signin:not([hidden])');
  await page.click(`#list li[data-id="${seen.large.id}"] button:has-text("Play")`);
  await page.waitForSelector('#signin:not([hidden])');
  seen.signedOutMessage = await page.textContent('#status');

  // Accessibility: axe-core in the signed-in page with recordings listed, and signed out. The
  // page's CSP forbids injected scripts, so this one context bypasses it.
  const audit = await browser.newContext({ bypassCSP: true });
  const a11y = await audit.newPage();
  const axe = path.join(process.env.AXE_CORE, 'axe.min.js');
  const violations = async () => {
    await a11y.addScriptTag({ path: axe });
    const result = await a11y.evaluate(async () => (await window.axe.run()).violations);
    return result.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`);
  };
  await a11y.goto(url + '/');
  await a11y.waitForSelector('body[data-ready="true"]');
  seen.a11ySignedOut = await violations();
  await a11y.fill('#demo-name', 'alice');
  await a11y.click('#demo-signin');
  await a11y.waitForSelector('#list li');
  seen.a11ySignedIn = await violations();

  // Sign-in with the identity provider, by redirect: state and nonce checked.
  const federated = await session(['microphone']);
  await federated.page.goto(url + '/');
  await federated.page.waitForSelector('body[data-ready="true"]');
  await federated.page.click('button:has-text("Sign in with testidp")');
  await federated.page.waitForSelector('#recorder:not([hidden])');
  seen.providerUser = await federated.page.textContent('#who');
  seen.tokenLeftInUrl = federated.page.url().includes('id_token');
  for (const mode of ['bad-nonce', 'bad-state']) {
    idp.mode = mode;
    const forged = await session(['microphone']);
    await forged.page.goto(url + '/');
    await forged.page.waitForSelector('body[data-ready="true"]');
    await forged.page.click('button:has-text("Sign in with testidp")');
    await forged.page.waitForSelector('#error:not([hidden])');
    seen[mode] = { error: await forged.page.textContent('#error'), signedIn: await forged.page.isVisible('#recorder') };
  }
  idp.mode = 'good';

  // A type the service refuses (a browser whose recorder says video/webm): its 415 message shows.
  const odd = await session(['microphone']);
  await odd.page.addInitScript(() => {
    Object.defineProperty(MediaRecorder.prototype, 'mimeType', { get: () => 'video/webm' });
  });
  await signIn(odd.page, 'dave');
  await odd.page.click('#record');
  await odd.page.waitForSelector('#stop:not([disabled])');
  await odd.page.waitForTimeout(1000);
  await odd.page.click('#stop');
  await odd.page.waitForSelector('#take:not([hidden])');
  await odd.page.click('#upload');
  await odd.page.waitForSelector('#error:not([hidden])');
  seen.unsupportedMessage = await odd.page.textContent('#error');

  // The microphone refused.
  const refused = await session([]);
  await signIn(refused.page, 'carol');
  await refused.page.click('#record');
  await refused.page.waitForSelector('#error:not([hidden])');
  seen.refusedMessage = await refused.page.textContent('#error');
  await refused.page.screenshot({ path: `${shots}/recorder-error.png` });
} catch (error) {
  seen.failure = String(error && error.stack || error);
} finally {
  await browser.close();
  idpServer.close();
}
console.log(JSON.stringify(seen));
