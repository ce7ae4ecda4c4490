// A 1:1 Element voice call between two people on the box, forced through the box's own TURN
// relay: Element's "Allow Peer-to-Peer for 1:1 calls" is off (js-sdk forceTURN, so
// iceTransportPolicy "relay"), and relays live on loopback. Evidence that media went through
// the relay: the peer connection's policy, the selected candidate pair's local candidate type
// from getStats(), and the relay's own counters from `outpost turn --json`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { startOutpost, launch, artifacts } from './harness.mjs';

const ALICE_PW = 'alice correct horse battery';
const BOB_PW = 'bob staple orbit lantern';
const ROOM = 'Outpost radio check';
let box;
let browser;
const outside = []; // requests that tried to leave the box
const consoleLog = join(artifacts, 'call-console.log');



before(async () => {
  box = await startOutpost();
  box.cli(['setup', '--server-name', 'box.lan', '--admin', 'alice', '--password-stdin'], ALICE_PW + '\n');
  await box.waitHealthy();
  box.cli(['users', 'add', 'bob', '--password-stdin'], BOB_PW + '\n');
  // Relays on loopback: the only network a test may use. Peers at the relay address are
  // allowed only within the relay port range, i.e. relay to relay.
  box.cli(['turn', 'set', '--relay-ip', '127.0.0.1', '--allow', '127.0.0.1/32']);
  await box.waitHealthy();
  browser = await launch({ trustRoot: box.rootPEM(), extraArgs: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'] });
  writeFileSync(consoleLog, '');
});

after(async () => {
  await browser?.close();
  await box?.stop();
});

// In the page before Element: peer-to-peer off for 1:1 calls (a device-level setting that
// Element stores inverted, as webRtcForceTURN), and every RTCPeerConnection recorded with
// its configuration.
function pageInit() {
  const s = JSON.parse(localStorage.getItem('mx_local_settings') || '{}');
  if (s.webRtcForceTURN !== true) {
    s.webRtcForceTURN = true;
    localStorage.setItem('mx_local_settings', JSON.stringify(s));
  }
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (config, ...rest) {
    // Recorded, not changed: our Element patch sets the candidate pool to 0 (a pool of 20
    // pre-allocates relays per URI and interface and exhausts the box's relay limits).
    const pool = config?.iceCandidatePoolSize;
    const pc = new Orig(config, ...rest);
    window.__pcs.push({ pc, pool, policy: config?.iceTransportPolicy, servers: (config?.iceServers || []).flatMap((s) => [].concat(s.urls || s.url || [])) });
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Orig);
}

async function person(name) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await ctx.grantPermissions(['microphone'], { origin: box.sbase });
  await ctx.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(box.sbase + '/') || url.startsWith('blob:' + box.sbase) || url.startsWith('data:')) return route.continue();
    outside.push(`${name}: ${route.request().method()} ${url}`);
    return route.abort('blockedbyclient');
  });
  await ctx.addInitScript(pageInit);
  const page = await ctx.newPage();
  page.on('console', (m) => {
    appendFileSync(consoleLog, `[${name}] ${m.type()}: ${m.text()}\n`);
    if (/violates the following Content Security Policy/.test(m.text())) outside.push(`${name}: ${m.text()}`);
  });
  page.on('pageerror', (e) => appendFileSync(consoleLog, `[${name}] PAGE ERROR: ${e.message}\n`));
  page.on('websocket', (ws) => { if (!ws.url().startsWith(box.sbase.replace('https', 'wss'))) outside.push(`${name}: websocket ${ws.url()}`); });
  return { ctx, page, name };
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, 'call-' + name + '.png') });
}

async function step(p, name, fn) {
  try {
    await fn();
  } catch (e) {
    await shot(p.page, 'FAILED-' + name);
    throw e;
  }
}

async function dismiss(p) {
  for (const name of ['OK', 'Dismiss', 'Not now', 'Later']) {
    const b = p.page.getByRole('button', { name, exact: true });
    for (const el of await b.all()) { try { await el.click({ timeout: 1000 }); } catch { /* gone */ } }
  }
}

function composer(p) {
  return p.page.locator('.mx_BasicMessageComposer_input[contenteditable="true"]').first();
}

// callState reads the page's newest peer connection: policy, state and the selected pair.
function callState(p) {
  return p.page.evaluate(async () => {
    const rec = window.__pcs[window.__pcs.length - 1];
    if (!rec) return null;
    const stats = [...(await rec.pc.getStats()).values()];
    const byId = Object.fromEntries(stats.map((s) => [s.id, s]));
    const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const pair = transport ? byId[transport.selectedCandidatePairId]
      : stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
    const local = pair && byId[pair.localCandidateId];
    const remote = pair && byId[pair.remoteCandidateId];
    return {
      count: window.__pcs.length,
      policy: rec.policy,
      elementPoolSize: rec.pool,
      servers: rec.servers,
      connectionState: rec.pc.connectionState,
      iceConnectionState: rec.pc.iceConnectionState,
      local: local && { type: local.candidateType, address: local.address, port: local.port, protocol: local.protocol, relayProtocol: local.relayProtocol },
      remote: remote && { type: remote.candidateType, address: remote.address, port: remote.port },
      bytesSent: pair?.bytesSent, bytesReceived: pair?.bytesReceived,
      candidateTypes: stats.filter((s) => s.type === 'local-candidate').map((s) => s.candidateType),
    };
  });
}

function turnStatus() {
  return JSON.parse(box.cli(['turn', '--json']));
}

let alice;
let bob;

test('TURN relays on loopback', () => {
  const st = turnStatus();
  writeFileSync(join(artifacts, 'call-turn-before.json'), JSON.stringify(st, null, 2));
  assert.equal(st.enabled, true, JSON.stringify(st));
  assert.equal(st.relay_ip ?? st.RelayIP, '127.0.0.1');
  assert.ok(st.uris?.length || st.URIs?.length, 'no TURN URIs: ' + JSON.stringify(st));
});

test('alice and bob sign in with peer-to-peer calls off', async () => {
  alice = await person('alice');
  bob = await person('bob');
  for (const [p, u, pw] of [[alice, 'alice', ALICE_PW], [bob, 'bob', BOB_PW]]) {
    await step(p, 'signin-' + u, async () => {
      await p.page.goto(box.sbase + '/#/login');
      await p.page.getByLabel('Username').fill(u);
      await p.page.getByLabel('Password', { exact: true }).fill(pw);
      await p.page.getByRole('button', { name: 'Sign in' }).click();
      await p.page.getByRole('heading', { name: `Welcome ${u}` }).waitFor({ timeout: 90000 });
      await p.page.waitForTimeout(1500);
      await dismiss(p);
    });
    // Element itself reads the setting as off.
    const v = await p.page.evaluate(() => JSON.parse(localStorage.getItem('mx_local_settings') || '{}').webRtcForceTURN);
    assert.equal(v, true);
  }
  await shot(alice.page, '01-alice-signed-in');
  assert.deepEqual(outside, []);
});

test('alice creates a private room and invites bob; bob joins', async () => {
  await step(alice, 'create-room', async () => {
    await alice.page.getByRole('button', { name: 'Add room' }).click();
    await alice.page.getByRole('menuitem', { name: 'New room' }).click();
    await alice.page.getByLabel('Name').fill(ROOM);
    await alice.page.getByRole('button', { name: 'Create room' }).click();
    await alice.page.locator('.mx_RoomHeader', { hasText: ROOM }).waitFor({ timeout: 60000 });
    await dismiss(alice);
  });
  await step(alice, 'invite', async () => {
    const c = composer(alice);
    await c.click();
    await c.fill('/invite @bob:box.lan');
    await alice.page.keyboard.press('Enter');
    await alice.page.getByText('invited @bob:box.lan').first().waitFor({ timeout: 30000 });
  });
  await step(bob, 'accept', async () => {
    await bob.page.locator('.mx_RoomTile', { hasText: ROOM }).click({ timeout: 60000 });
    await bob.page.getByRole('button', { name: 'Accept' }).click();
    await bob.page.locator('.mx_RoomHeader', { hasText: ROOM }).waitFor({ timeout: 60000 });
    await composer(bob).waitFor({ timeout: 60000 });
    await dismiss(bob);
  });
  await step(alice, 'sees-join', () => alice.page.getByText(/bob:box\.lan joined the room|bob joined the room/).first().waitFor({ timeout: 60000 }));
  // A message first, decrypted on bob's side: the room's encryption keys reach bob before the
  // (encrypted) call invite does. Element drops an invite it could only decrypt late, which
  // made this test flaky when the keys raced the invite.
  await step(alice, 'hello', async () => {
    const c = composer(alice);
    await c.click();
    await c.fill('Can you hear me?');
    await alice.page.keyboard.press('Enter');
  });
  await step(bob, 'hello-decrypted', () => bob.page.locator('.mx_EventTile_body', { hasText: 'Can you hear me?' }).first().waitFor({ timeout: 60000 }));
  await shot(bob.page, '02-bob-joined');
  assert.deepEqual(outside, []);
});

let evidence;

test('alice calls bob, bob answers: the call connects through the relay only', async () => {
  await step(alice, 'start-call', async () => {
    await alice.page.locator('.mx_RoomHeader').getByRole('button', { name: 'Voice call' }).click({ timeout: 30000 });
  });
  await step(bob, 'answer', async () => {
    const toast = bob.page.locator('.mx_IncomingLegacyCallToast');
    await toast.waitFor({ timeout: 60000 });
    await shot(bob.page, '03-bob-incoming');
    await toast.getByRole('button', { name: 'Accept' }).click();
  });
  for (const p of [alice, bob]) {
    await step(p, 'connected-' + p.name, async () => {
      await p.page.waitForFunction(() => window.__pcs.some((r) => r.pc.connectionState === 'connected'), null, { timeout: 60000 });
    });
  }
  // Let some audio flow through the relay.
  await alice.page.waitForTimeout(4000);
  const a = await callState(alice);
  const b = await callState(bob);
  evidence = { alice: a, bob: b };
  writeFileSync(join(artifacts, 'call-evidence.json'), JSON.stringify(evidence, null, 2));
  console.log('call evidence', JSON.stringify(evidence));
  // Element's own view: the call tile shows its running duration.
  await alice.page.locator('.mx_LegacyCallEvent', { hasText: /\d\d:\d\d/ }).last().waitFor({ timeout: 10000 });
  await shot(alice.page, '04-alice-connected');
  await shot(bob.page, '05-bob-connected');
  for (const [who, s] of [['alice', a], ['bob', b]]) {
    assert.equal(s.policy, 'relay', `${who}: iceTransportPolicy`);
    assert.equal(s.elementPoolSize ?? 0, 0, `${who}: Element must not pre-gather a candidate pool (it exhausts the relay's limits)`);
    assert.equal(s.connectionState, 'connected', `${who}: connectionState`);
    assert.equal(s.local?.type, 'relay', `${who}: selected local candidate ${JSON.stringify(s.local)}`);
    assert.ok(s.candidateTypes.every((t) => t === 'relay'), `${who}: gathered ${s.candidateTypes}`);
    assert.equal(s.local.address, '127.0.0.1');
    assert.ok(s.bytesSent > 0 && s.bytesReceived > 0, `${who}: no media ${s.bytesSent}/${s.bytesReceived}`);
    assert.ok(s.servers.some((u) => /^turns?:/.test(u)), `${who}: no TURN server from the box: ${s.servers}`);
  }
  assert.deepEqual(outside, []);
});

test('the relay counted the allocations and the bytes; hang up', async () => {
  const st = turnStatus();
  writeFileSync(join(artifacts, 'call-turn-after.json'), JSON.stringify(st, null, 2));
  console.log('turn stats', JSON.stringify(st.stats));
  assert.ok(st.stats.total_allocations >= 2, 'total_allocations ' + st.stats.total_allocations);
  assert.ok(st.stats.relayed_bytes > 0, 'relayed_bytes ' + st.stats.relayed_bytes);
  await step(alice, 'hangup', async () => {
    await alice.page.locator('.mx_LegacyCallView').first().hover();
    await alice.page.locator('.mx_LegacyCallViewButtons_button_hangup').first().click({ timeout: 30000 });
  });
  for (const p of [alice, bob]) {
    await step(p, 'ended-' + p.name, () => p.page.waitForFunction(() => window.__pcs.every((r) => r.pc.connectionState === 'closed'), null, { timeout: 30000 }));
  }
  await alice.page.waitForTimeout(1000);
  await shot(alice.page, '06-alice-ended');
  await shot(bob.page, '07-bob-ended');
  assert.deepEqual(outside, []);
});
