// Test harness: a real outpostd with the real dendrite on 127.0.0.1, and Debian's Chromium
// driven by Playwright. Nothing here reaches beyond the loopback interface.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '..', '..');
const bin = process.env.OUTPOST_BIN || join(repo, 'bin');
export const artifacts = process.env.OUTPOST_ARTIFACTS || join(repo, 'test-artifacts', 'browser');
mkdirSync(artifacts, { recursive: true });

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

// startOutpost runs outpostd on a fresh data dir and resolves once its gateway answers.
export async function startOutpost() {
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-browser-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const log = openSync(join(artifacts, `outpostd-${port}.log`), 'w');
  const proc = spawn(join(bin, 'outpostd'), ['-data', dataDir, '-http', `127.0.0.1:${port}`,
    '-dendrite', process.env.OUTPOST_DENDRITE || join(bin, 'dendrite'), '-log-level', 'debug'], { stdio: ['ignore', log, log] });
  let exited = false;
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
  return {
    base,
    dataDir,
    claimCode: () => readFileSync(join(dataDir, 'claim-code'), 'utf8').trim(),
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// launch starts headless Chromium with networking limited to what the test serves.
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

// newPage opens a context that fails the test on any request leaving the box's origin and
// on page errors.
export async function newPage(browser, base, problems) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  await ctx.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(base + '/') || url === base) return route.continue();
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

// matrixLogin signs in through the client-server API, as any Matrix app would.
export async function matrixLogin(base, user, password) {
  const r = await fetch(base + '/_matrix/client/v3/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user }, password }),
  });
  return { status: r.status, body: await r.json() };
}
