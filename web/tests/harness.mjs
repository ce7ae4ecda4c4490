// Test harness: a real outpostd with the real dendrite on 127.0.0.1, and Debian's Chromium
// driven by Playwright. Nothing here reaches beyond the loopback interface.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '..', '..');
// Absolute: outpostd runs dendrite from its own working directory.
const bin = process.env.OUTPOST_BIN ? resolve(process.env.OUTPOST_BIN) : join(repo, 'bin');
export const artifacts = process.env.OUTPOST_ARTIFACTS || join(repo, 'test-artifacts', 'browser');
mkdirSync(artifacts, { recursive: true });

// freePorts resolves to n distinct loopback ports that were free a moment ago. The servers
// stay open until all are picked: closed one at a time, the kernel may hand out a port twice.
async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise((res, rej) => { s.once('error', rej); s.listen(0, '127.0.0.1', res); });
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((res) => s.close(() => res()))));
  }
}

// startOutpost runs outpostd on a fresh data dir and resolves once its gateway answers.
export async function startOutpost() {
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-browser-'));
  const [port, sport, tport, tlsport] = await freePorts(4);
  const base = `http://127.0.0.1:${port}`;
  const log = openSync(join(artifacts, `outpostd-${port}.log`), 'a');
  let proc;
  let exited = false;
  const spawnDaemon = async () => {
    exited = false;
    proc = spawn(join(bin, 'outpostd'), ['-data', dataDir, '-http', `127.0.0.1:${port}`, '-https', `127.0.0.1:${sport}`,
      '-turn', `127.0.0.1:${tport}`, '-turn-tls', `127.0.0.1:${tlsport}`,
      '-dendrite', process.env.OUTPOST_DENDRITE || join(bin, 'dendrite'), '-log-level', 'debug'], { stdio: ['ignore', log, log] });
    proc.on('exit', () => { exited = true; });
    for (let i = 0; ; i++) {
      if (exited) throw new Error('outpostd exited during start; see ' + artifacts);
      try {
        const r = await fetch(base + '/healthz');
        if (r.ok) break;
      } catch (e) { /* not listening yet */ }
      if (i > 300) throw new Error('outpostd did not start within 30s');
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stopDaemon = async () => {
    if (!exited) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await gone;
    }
  };
  await spawnDaemon();
  return {
    base,
    sbase: `https://127.0.0.1:${sport}`,
    sport,
    dataDir,
    claimCode: () => readFileSync(join(dataDir, 'claim-code'), 'utf8').trim(),
    // rootPEM is the box's root CA, created at setup.
    rootPEM: () => readFileSync(join(dataDir, 'tls', 'ca', 'root.crt'), 'utf8'),
    // cli runs the outpost CLI against this box (stdin from input).
    cli: (args, input) => execFileSync(join(bin, 'outpost'), ['-data', dataDir, ...args], { input, encoding: 'utf8' }),
    // waitHealthy resolves once the homeserver answers (after setup).
    async waitHealthy() {
      for (let i = 0; i < 600; i++) {
        try {
          const r = await (await fetch(base + '/healthz')).json();
          if (r.homeserver === 'running') return;
        } catch { /* starting */ }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('homeserver did not become healthy');
    },
    // offline runs fn while outpostd is stopped (a restore by the CLI, say), then starts it
    // again on the same addresses, as a box that was switched off and on.
    async offline(fn) {
      await stopDaemon();
      await fn();
      await spawnDaemon();
    },
    async stop() {
      await stopDaemon();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// launch starts headless Chromium with networking limited to what the test serves. With
// trustRoot, the box's root CA is installed in the browser's own NSS trust store first (a
// fresh HOME), exactly as a person installs /ca.crt; names in mapHosts resolve to 127.0.0.1.
// extraArgs are appended to Chromium's command line (fake media devices for calls, say).
export async function launch({ trustRoot, mapHosts = [], extraArgs = [] } = {}) {
  const home = mkdtempSync(join(tmpdir(), 'outpost-chromium-home-'));
  if (trustRoot) {
    const db = join(home, '.pki', 'nssdb');
    mkdirSync(db, { recursive: true });
    const rootFile = join(home, 'outpost-root.crt');
    writeFileSync(rootFile, trustRoot);
    execFileSync('certutil', ['-N', '-d', 'sql:' + db, '--empty-password']);
    execFileSync('certutil', ['-A', '-d', 'sql:' + db, '-n', 'Outpost box root', '-t', 'C,,', '-i', rootFile]);
  }
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];
  if (mapHosts.length) args.push('--host-resolver-rules=' + mapHosts.map((h) => `MAP ${h} 127.0.0.1`).join(','));
  args.push(...extraArgs);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args,
    env: { ...process.env, HOME: home },
  });
  browser.on('disconnected', () => rmSync(home, { recursive: true, force: true }));
  return browser;
}

// newPage opens a context that fails the test on any request leaving the box's origins
// (one, or a list) and on page errors.
export async function newPage(browser, origins, problems) {
  const allowed = [].concat(origins);
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  await ctx.route('**/*', (route) => {
    const url = route.request().url();
    if (allowed.some((o) => url.startsWith(o + '/') || url === o)) return route.continue();
    problems.push('request outside the box: ' + url);
    return route.abort();
  });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push('console error: ' + m.text()); });
  return { ctx, page };
}

export async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, name + '.png'), fullPage: true });
}

// matrixLogin signs in through the client-server API over HTTPS, trusting only the box's
// root, as any Matrix app on a device with the root installed would.
export function matrixLogin(box, user, password) {
  const body = JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user }, password });
  return new Promise((resolve, reject) => {
    const req = request(box.sbase + '/_matrix/client/v3/login', {
      method: 'POST', ca: box.rootPEM(), headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(data || '{}') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
