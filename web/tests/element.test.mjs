// Element Web served by the box, used by two people in two browsers: sign in, an encrypted
// room, messages both ways, an image, a reply, a reaction, and history restored with the
// security key after a reload. Every request outside the box's origin is blocked and
// recorded, and fails the test: the box must work with no internet at all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { startOutpost, launch, artifacts } from './harness.mjs';

const ALICE_PW = 'alice correct horse battery';
const BOB_PW = 'bob staple orbit lantern';
let box;
let browser;
const outside = []; // requests that tried to leave the box
const consoleLog = join(artifacts, 'element-console.log');



before(async () => {
  box = await startOutpost();
  box.cli(['setup', '--server-name', 'box.lan', '--admin', 'alice', '--password-stdin'], ALICE_PW + '\n');
  await box.waitHealthy();
  box.cli(['users', 'add', 'bob', '--password-stdin'], BOB_PW + '\n');
  browser = await launch({ trustRoot: box.rootPEM() });
  writeFileSync(consoleLog, '');
});

after(async () => {
  await browser?.close();
  await box?.stop();
});

// person opens a browser context whose every request outside the box is blocked and recorded.
async function person(name) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  await ctx.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(box.sbase + '/') || url.startsWith('blob:' + box.sbase) || url.startsWith('data:')) return route.continue();
    outside.push(`${name}: ${route.request().method()} ${url}`);
    return route.abort('blockedbyclient');
  });
  const page = await ctx.newPage();
  page.on('console', (m) => {
    appendFileSync(consoleLog, `[${name}] ${m.type()}: ${m.text()}\n`);
    // The CSP stops a request before the route sees it: count that as leaving the box too.
    if (/violates the following Content Security Policy/.test(m.text())) outside.push(`${name}: ${m.text()}`);
  });
  page.on('pageerror', (e) => appendFileSync(consoleLog, `[${name}] PAGE ERROR: ${e.message}\n`));
  page.on('websocket', (ws) => { if (!ws.url().startsWith(box.sbase.replace('https', 'wss'))) outside.push(`${name}: websocket ${ws.url()}`); });
  return { ctx, page, name };
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, 'element-' + name + '.png') });
}

test('Element loads from the box: login page, light and dark, headers', async () => {
  const { ctx, page } = await person('cold');
  const t0 = Date.now();
  const resp = await page.goto(box.sbase + '/');
  await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: 60000 });
  const coldMs = Date.now() - t0;
  appendFileSync(join(artifacts, 'element-timings.txt'), `cold login page: ${coldMs} ms\n`);
  console.log(`cold load of the login page: ${coldMs} ms`);
  const h = resp.headers();
  assert.match(h['content-security-policy'], /default-src 'none'/);
  assert.equal(h['cache-control'], 'no-cache');
  assert.equal(h['content-encoding'], 'br');
  await shot(page, '01-login-light');

  // Assets: hashed, immutable, right types (the crypto wasm above all), asked by the browser
  // itself (it trusts the box's root; Node does not).
  const get = (url) => page.evaluate(async (u) => {
    const r = await fetch(u);
    return { status: r.status, headers: Object.fromEntries(r.headers), text: (await r.text()).slice(0, 4000) };
  }, url);
  const html = (await get('/')).text;
  const js = /src="(\/bundles\/index\.[A-Z0-9]+\.js)"/.exec(html)[1];
  const jsResp = await get(js);
  assert.equal(jsResp.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.match(jsResp.headers['content-type'], /^text\/javascript/);
  const css = /href="(\/bundles\/theme-dark\.\w+\.css)"/.exec(html)[1];
  assert.match((await get(css)).headers['content-type'], /^text\/css/);
  const cfg = JSON.parse((await get('/config.json')).text);
  assert.equal(cfg.default_server_config['m.homeserver'].server_name, 'box.lan');
  assert.equal(cfg.default_server_config['m.homeserver'].base_url, box.sbase);

  // Dark theme: the OS preference picks it before anyone signs in.
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.reload();
  await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: 60000 });
  const bg = await page.evaluate(() => getComputedStyle(document.querySelector('.mx_AuthPage') || document.body).backgroundColor);
  await shot(page, '02-login-dark');
  assert.notEqual(bg, 'rgb(255, 255, 255)', 'dark theme did not apply');
  await ctx.close();
  assert.deepEqual(outside, []);
});

test('a German browser gets German, a Russian one Russian', async () => {
  for (const [locale, word] of [['de-DE', 'Anmelden'], ['ru-RU', 'Войти'], ['fr-FR', 'Se connecter'], ['es-ES', 'Iniciar sesión']]) {
    const ctx = await browser.newContext({ locale, viewport: { width: 1000, height: 760 } });
    await ctx.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(box.sbase + '/')) return route.continue();
      outside.push(`${locale}: ${url}`);
      return route.abort();
    });
    const page = await ctx.newPage();
    await page.goto(box.sbase + '/');
    await page.getByRole('button', { name: word }).waitFor({ timeout: 60000 });
    await shot(page, `03-login-${locale}`);
    await ctx.close();
  }
  assert.deepEqual(outside, []);
});

async function signIn(p, user, pw) {
  await p.page.goto(box.sbase + '/#/login');
  await p.page.getByLabel('Username').fill(user);
  await p.page.getByLabel('Password', { exact: true }).fill(pw);
  await p.page.getByRole('button', { name: 'Sign in' }).click();
}

let alice;
let bob;
const ROOM = 'Outpost field office';

// dismiss closes the popups Element shows a new session (notifications, threads, ...).
async function dismiss(p, { later = true } = {}) {
  for (const name of ['OK', 'Dismiss', 'Not now', ...(later ? ['Later'] : [])]) {
    const b = p.page.getByRole('button', { name, exact: true });
    for (const el of await b.all()) { try { await el.click({ timeout: 1000 }); } catch { /* gone */ } }
  }
}

async function composer(p) {
  return p.page.locator('.mx_BasicMessageComposer_input[contenteditable="true"]').first();
}

async function send(p, text) {
  const c = await composer(p);
  await c.click();
  await c.fill(text);
  await p.page.keyboard.press('Enter');
}

// tile finds a message in the timeline, decrypted.
function tile(p, text) {
  return p.page.locator('.mx_EventTile', { has: p.page.locator('.mx_EventTile_body', { hasText: text }) }).last();
}

async function step(p, name, fn) {
  try {
    await fn();
  } catch (e) {
    await shot(p.page, 'FAILED-' + name);
    throw e;
  }
}

test('alice and bob sign in', async () => {
  alice = await person('alice');
  bob = await person('bob');
  for (const [p, u, pw] of [[alice, 'alice', ALICE_PW], [bob, 'bob', BOB_PW]]) {
    await step(p, 'signin-' + u, async () => {
      await signIn(p, u, pw);
      await p.page.getByRole('heading', { name: `Welcome ${u}` }).waitFor({ timeout: 90000 });
      await p.page.waitForTimeout(1500);
      await dismiss(p, { later: p !== bob }); // bob sets up backup from the toast later
    });
  }
  await shot(alice.page, '10-alice-signed-in');
  await shot(bob.page, '11-bob-signed-in');
  assert.deepEqual(outside, []);
});

test('alice creates an encrypted private room and invites bob; bob joins', async () => {
  await step(alice, 'create-room', async () => {
    await alice.page.getByRole('button', { name: 'Add room' }).click();
    await alice.page.getByRole('menuitem', { name: 'New room' }).click();
    await alice.page.getByLabel('Name').fill(ROOM);
    await shot(alice.page, '12-create-room');
    await alice.page.getByRole('button', { name: 'Create room' }).click();
    await alice.page.locator('.mx_RoomHeader', { hasText: ROOM }).waitFor({ timeout: 60000 });
    // Private rooms are encrypted from the start.
    await alice.page.locator('.mx_EventTileBubble', { hasText: 'Encryption enabled' }).first().waitFor({ timeout: 30000 });
    await dismiss(alice);
  });
  await step(alice, 'invite', async () => {
    await send(alice, '/invite @bob:box.lan');
    await alice.page.getByText('invited @bob:box.lan').first().waitFor({ timeout: 30000 });
  });
  await step(bob, 'accept', async () => {
    await bob.page.locator('.mx_RoomTile', { hasText: ROOM }).click({ timeout: 60000 });
    await bob.page.getByRole('button', { name: 'Accept' }).click();
    await bob.page.locator('.mx_RoomHeader', { hasText: ROOM }).waitFor({ timeout: 60000 });
    await (await composer(bob)).waitFor({ timeout: 60000 });
    await dismiss(bob, { later: false });
  });
  await shot(bob.page, '13-bob-joined');
  assert.deepEqual(outside, []);
});

test('messages go both ways, decrypted on both sides', async () => {
  await step(alice, 'send-alice', () => send(alice, 'Hello Bob, this is encrypted.'));
  await step(bob, 'recv-bob', () => tile(bob, 'Hello Bob, this is encrypted.').waitFor({ timeout: 60000 }));
  await step(bob, 'send-bob', () => send(bob, 'Hi Alice, I can read you.'));
  await step(alice, 'recv-alice', () => tile(alice, 'Hi Alice, I can read you.').waitFor({ timeout: 60000 }));
  for (const p of [alice, bob]) {
    assert.equal(await p.page.locator('.mx_DecryptionFailureBody').count(), 0, `${p.name} has undecryptable messages`);
    // Element marks events it decrypted with an encryption shield (not the "unencrypted" warning).
    assert.equal(await tile(p, 'Hello Bob').locator('.mx_EventTile_e2eIcon_warning').count(), 0);
  }
  await shot(alice.page, '14-alice-chat');
  await shot(bob.page, '15-bob-chat');
  assert.deepEqual(outside, []);
});

test('snapshot, restore while both stay signed in: new messages still decrypt both ways', async () => {
  const usb = mkdtempSync(join(tmpdir(), 'outpost-usb-'));
  const keyFile = join(usb, '..', 'outpost-recovery-' + Date.now() + '.txt');
  writeFileSync(keyFile, box.cli(['recovery-key', 'new']), { mode: 0o600 });
  box.cli(['targets', 'add', '--name', 'usb', '--kind', 'local', '--path', usb]);
  assert.match(box.cli(['snapshot', 'now']), /verified restorable/);
  // The conversation goes on after the snapshot; the restore rolls this back on the server.
  await step(alice, 'send-after-snapshot', () => send(alice, 'Said after the snapshot.'));
  await step(bob, 'recv-after-snapshot', () => tile(bob, 'Said after the snapshot.').waitFor({ timeout: 60000 }));
  await box.offline(async () => {
    // With the box off, both rooms show Element's "connection lost" bar (drawing its warning
    // icon once crashed the whole room view).
    for (const p of [alice, bob]) {
      await step(p, 'connection-lost', () => p.page.locator('.mx_RoomStatusBar_connectionLostBar').waitFor({ timeout: 90000 }));
    }
    await shot(alice.page, '16-alice-connection-lost');
    const out = box.cli(['restore', '--kind', 'local', '--path', usb, '--recovery-key', keyFile]);
    assert.match(out, /restored into/);
  });
  await box.waitHealthy();
  for (const p of [alice, bob]) {
    await step(p, 'reconnected', () => p.page.locator('.mx_RoomStatusBar_connectionLostBar').waitFor({ state: 'detached', timeout: 90000 }));
  }
  // Both browsers were left open; their sessions continue against the restored server.
  await step(alice, 'send-after-restore', () => send(alice, 'Hello again after the restore.'));
  await step(bob, 'recv-after-restore', () => tile(bob, 'Hello again after the restore.').waitFor({ timeout: 120000 }));
  await step(bob, 'send-after-restore', () => send(bob, 'Bob still reads and writes after the restore.'));
  await step(alice, 'recv-after-restore', () => tile(alice, 'Bob still reads and writes after the restore.').waitFor({ timeout: 120000 }));
  for (const p of [alice, bob]) {
    assert.equal(await p.page.locator('.mx_DecryptionFailureBody').count(), 0, `${p.name} cannot decrypt a message after the restore`);
  }
  await shot(bob.page, '16-bob-after-restore');
  rmSync(usb, { recursive: true, force: true });
  rmSync(keyFile, { force: true });
  assert.deepEqual(outside, []);
});

// A small PNG made here: a 64x48 gradient.
function png() {
  const { deflateSync, crc32 } = zlib;
  const w = 64, h = 48;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = x * 4; raw[o + 1] = y * 5; raw[o + 2] = 200;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

test('an image upload shows its thumbnail on the other side', async () => {
  await step(alice, 'upload', async () => {
    await alice.page.locator('.mx_MessageComposer input[type=file]').first().setInputFiles({ name: 'field-map.png', mimeType: 'image/png', buffer: png() });
    await alice.page.getByRole('button', { name: 'Upload' }).click({ timeout: 30000 });
  });
  await step(bob, 'thumbnail', async () => {
    const img = bob.page.locator('.mx_MImageBody img').last();
    await img.waitFor({ timeout: 60000 });
    await bob.page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle(), { timeout: 60000 });
    assert.match(await img.getAttribute('src'), /^blob:/); // decrypted in the browser
  });
  await shot(bob.page, '16-bob-image');
  assert.deepEqual(outside, []);
});

test('a reply and a reaction render on both sides', async () => {
  await step(bob, 'reply', async () => {
    const t = tile(bob, 'Hello Bob, this is encrypted.');
    await t.hover();
    await t.getByRole('button', { name: 'Reply', exact: true }).click();
    await send(bob, 'Replying to you, Alice.');
  });
  await step(alice, 'see-reply', async () => {
    const r = alice.page.locator('.mx_EventTile', { hasText: 'Replying to you, Alice.' }).last();
    await r.waitFor({ timeout: 60000 });
    await r.locator('.mx_ReplyChain, .mx_ReplyTile').first().waitFor({ timeout: 30000 });
  });
  await step(alice, 'react', async () => {
    const t = tile(alice, 'Hi Alice, I can read you.');
    await t.hover();
    await t.getByRole('button', { name: 'React' }).click();
    await alice.page.locator('.mx_EmojiPicker_quick').getByText('👍').first().click();
  });
  await step(bob, 'see-reaction', async () => {
    await tile(bob, 'Hi Alice, I can read you.').locator('.mx_ReactionsRowButton', { hasText: '1' }).waitFor({ timeout: 60000 });
  });
  await shot(alice.page, '17-alice-reply-reaction');
  await shot(bob.page, '18-bob-reply-reaction');
  assert.deepEqual(outside, []);
});

let securityKey;

test('bob sets up key backup with a security key', async () => {
  await step(bob, 'backup-setup', async () => {
    await bob.page.getByRole('button', { name: 'Continue', exact: true }).first().click({ timeout: 30000 });
    const dlg = bob.page.locator('.mx_CreateSecretStorageDialog');
    await dlg.waitFor({ timeout: 30000 });
    await shot(bob.page, '19-bob-backup-start');
    await dlg.getByRole('button', { name: 'Continue' }).click();
    const key = dlg.locator('.mx_CreateSecretStorageDialog_recoveryKey code');
    await key.waitFor({ timeout: 30000 });
    securityKey = (await key.textContent()).trim();
    assert.match(securityKey, /^(\w{4} ){11}\w{4}$/);
    await shot(bob.page, '20-bob-security-key');
    await dlg.getByRole('button', { name: 'Copy' }).click();
    await dlg.getByRole('button', { name: 'Continue' }).click();
    // Uploading cross-signing keys asks for the account password.
    const pw = bob.page.getByLabel('Password', { exact: true });
    try {
      await pw.waitFor({ timeout: 15000 });
      await pw.fill(BOB_PW);
      await bob.page.getByRole('button', { name: 'Continue' }).last().click();
    } catch { /* not asked */ }
    await bob.page.getByRole('button', { name: 'Done' }).click({ timeout: 60000 });
  });
  // Let the backup upload the room keys.
  await bob.page.waitForTimeout(5000);
  assert.deepEqual(outside, []);
});

test('bob on a fresh browser: security key restores the encrypted history', async () => {
  await bob.ctx.close();
  const bob2 = await person('bob-new-device');
  await step(bob2, 'signin-again', async () => {
    await signIn(bob2, 'bob', BOB_PW);
    await shot(bob2.page, '21-bob-verify-prompt');
    await bob2.page.getByRole('button', { name: /Security Key/i }).first().click({ timeout: 90000 });
    await bob2.page.locator('#mx_securityKey').fill(securityKey);
    await bob2.page.getByRole('button', { name: 'Continue' }).last().click();
    await bob2.page.getByRole('button', { name: 'Done' }).click({ timeout: 60000 });
  });
  await step(bob2, 'history', async () => {
    await dismiss(bob2);
    await bob2.page.locator('.mx_RoomTile', { hasText: ROOM }).click({ timeout: 60000 });
    await tile(bob2, 'Hello Bob, this is encrypted.').waitFor({ timeout: 90000 });
    await tile(bob2, 'Hi Alice, I can read you.').waitFor({ timeout: 30000 });
  });
  await shot(bob2.page, '22-bob-history-restored');
  assert.equal(await bob2.page.locator('.mx_DecryptionFailureBody').count(), 0);
  assert.deepEqual(outside, []);
});
