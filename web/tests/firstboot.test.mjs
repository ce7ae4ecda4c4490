// First boot in a real browser: claim the box, run the wizard, then manage people in the
// admin console, as the office's admin would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOutpost, launch, newPage, shot, matrixLogin } from './harness.mjs';

const ADMIN_PW = 'alice correct horse battery';
let box;
let browser; // before setup: the box has no certificate yet, the browser trusts nothing
let trusting; // after setup: the box's root installed, as a person does from /ca.crt
const problems = [];
let setupRecoveryKey = ''; // the key the wizard showed
let usb = ''; // the snapshot target, kept for the restore onto a second box

before(async () => {
  box = await startOutpost();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await trusting?.close();
  await box?.stop();
});

test('setup wizard: wrong code refused, reload resumes, setup completes, wizard gone', async () => {
  const { ctx, page } = await newPage(browser, [box.base, box.sbase], problems);
  await page.goto(box.base + '/');
  assert.match(page.url(), /\/setup\/$/);
  await page.getByRole('heading', { name: 'Claim this box' }).waitFor();
  await shot(page, '01-wizard-claim');

  await page.getByLabel('Setup code').fill('AAAA-BBBB-CCCC');
  await page.getByRole('button', { name: 'Continue' }).click();
  const codeError = page.locator('#code-error');
  await codeError.filter({ hasText: 'not right' }).waitFor();
  assert.equal(await page.getByLabel('Setup code').getAttribute('aria-invalid'), 'true');
  await shot(page, '02-wizard-wrong-code');

  await page.getByLabel('Setup code').fill(box.claimCode().toLowerCase());
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { name: 'New server or restore?' }).waitFor();
  await shot(page, '02b-wizard-start');
  await page.getByRole('button', { name: 'Set up a new server' }).click();
  await page.getByRole('heading', { name: 'Server name' }).waitFor();
  // A bad server name is explained next to the field.
  await page.getByLabel('Server name').fill('https://box.lan/');
  await page.locator('section[data-step=server] button[type=submit]').click();
  await page.locator('#server_name-error').filter({ hasText: /host name/ }).waitFor();
  await page.getByLabel('Server name').fill('box.lan');
  await shot(page, '03-wizard-server-name');
  await page.locator('section[data-step=server] button[type=submit]').click();
  await page.getByRole('heading', { name: 'First administrator' }).waitFor();

  // Reloading mid-way resumes at the same step with the earlier answer kept.
  await page.reload();
  await page.getByRole('heading', { name: 'First administrator' }).waitFor();
  await page.getByRole('button', { name: 'Back' }).first().click();
  assert.equal(await page.getByLabel('Server name').inputValue(), 'box.lan');
  await page.locator('section[data-step=server] button[type=submit]').click();

  await page.getByLabel('User name').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill('short');
  assert.match(await page.locator('#strength-label').textContent(), /too short/);
  await page.getByLabel('Password', { exact: true }).fill(ADMIN_PW);
  assert.match(await page.locator('#strength-label').textContent(), /good|strong/);
  await page.getByLabel('Password again').fill(ADMIN_PW);
  await shot(page, '04-wizard-admin');
  await page.locator('section[data-step=admin] button[type=submit]').click();
  await page.getByRole('heading', { name: 'Certificates' }).waitFor();
  // ACME needs an https directory: the box says so next to the field.
  await page.getByLabel('An ACME certificate authority on this network').check();
  await page.getByLabel('ACME directory URL').fill('http://ca.lan/directory');
  await page.locator('section[data-step=tls] button[type=submit]').click();
  await page.locator('#acme_directory-error').filter({ hasText: 'https://' }).waitFor();
  await page.getByLabel("The box's own certificate authority").check();
  assert.equal(await page.locator('#acme-fields').isHidden(), true);
  await shot(page, '05a-wizard-certificates');
  await page.locator('section[data-step=tls] button[type=submit]').click();
  await page.getByRole('heading', { name: 'Federation' }).waitFor();
  assert.equal(await page.getByLabel('Allow federation with other servers').isChecked(), false);
  await shot(page, '05-wizard-federation');
  await page.locator('section[data-step=federation] button[type=submit]').click();
  // The recovery key: created, shown once with its QR code, and its saving confirmed.
  await page.getByRole('heading', { name: 'Recovery key' }).waitFor();
  await page.locator('section[data-step=recovery] button[type=submit]').click();
  await page.locator('#saved-error').filter({ hasText: 'create the recovery key first' }).waitFor();
  await page.getByRole('button', { name: 'Create the recovery key' }).click();
  await page.locator('#recovery-result').waitFor();
  setupRecoveryKey = (await page.locator('#recovery-identity').textContent()).trim();
  assert.match(setupRecoveryKey, /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
  assert.equal(await page.locator('#recovery-qr svg').count(), 1);
  await page.locator('section[data-step=recovery] button[type=submit]').click();
  await page.locator('#saved-error').filter({ hasText: 'printed or written down' }).waitFor();
  await shot(page, '05b-wizard-recovery-key');
  await page.getByLabel('I have printed or written down the recovery key').check();
  await page.locator('section[data-step=recovery] button[type=submit]').click();
  await page.getByRole('heading', { name: 'Check and finish' }).waitFor();
  assert.equal(await page.locator('#sum-admin').textContent(), '@alice:box.lan');
  assert.equal(await page.locator('#sum-federation').textContent(), 'off');
  assert.equal(await page.locator('#sum-tls').textContent(), "the box's own authority");
  await shot(page, '06-wizard-summary');
  await page.getByRole('button', { name: 'Set up Outpost' }).click();
  await page.getByRole('heading', { name: 'Outpost is ready' }).waitFor({ timeout: 120000 });
  assert.equal(await page.locator('#done-user').textContent(), '@alice:box.lan');
  await shot(page, '07-wizard-done');

  // Plain HTTP now offers only the trust page: the root to install and its fingerprint.
  await page.goto(box.base + '/');
  await page.getByRole('heading', { name: 'Connect securely to this Outpost box' }).waitFor();
  const fingerprint = (await page.locator('.secret').textContent()).trim();
  assert.match(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  await shot(page, '08-trust-page');
  const crt = await page.request.get(box.base + '/ca.crt');
  assert.equal(await crt.text(), box.rootPEM());
  // A browser that has not installed the root refuses the box's HTTPS.
  await assert.rejects(page.goto(box.sbase + '/admin/'), /ERR_CERT_AUTHORITY_INVALID/);
  await ctx.close();

  const r = await matrixLogin(box, 'alice', ADMIN_PW);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  trusting = await launch({ trustRoot: box.rootPEM(), mapHosts: ['box.lan'] });
});

test('a browser that installed the root loads the box over HTTPS, by name and by IP', async () => {
  const { ctx, page } = await newPage(trusting, `https://box.lan:${box.sport}`, problems);
  const resp = await page.goto(`https://box.lan:${box.sport}/admin/`);
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['strict-transport-security'] || '', /max-age=\d+/);
  assert.equal(await page.evaluate(() => window.isSecureContext && !!window.crypto.subtle), true);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await shot(page, '09-https-by-name');
  await ctx.close();
  const byIP = await newPage(trusting, box.sbase, problems);
  assert.equal((await byIP.page.goto(box.sbase + '/admin/')).status(), 200);
  // The wizard is gone once the box is set up.
  await byIP.page.goto(box.sbase + '/setup/');
  assert.equal(byIP.page.url(), box.sbase + '/admin/');
  await byIP.ctx.close();
  // A plain-HTTP address of the console sends the browser to HTTPS.
  const redirect = await newPage(trusting, box.sbase, problems);
  await redirect.ctx.unroute('**/*');
  await redirect.page.goto(box.base + '/admin/');
  assert.equal(redirect.page.url(), box.sbase + '/admin/');
  await redirect.ctx.close();
});

test('admin console: create user, invite, redeem, deactivate; non-admins kept out', async () => {
  const { ctx, page } = await newPage(trusting, box.sbase, problems);
  page.on('dialog', (d) => d.accept());
  await page.goto(box.sbase + '/admin/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await shot(page, '10-console-sign-in');
  const signin = page.locator('#signin');
  await signin.getByLabel('User name').fill('alice');
  await signin.getByLabel('Password').fill('wrong password here');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#signin .error').filter({ hasText: 'wrong user name or password' }).waitFor();
  await signin.getByLabel('Password').fill(ADMIN_PW);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('tab', { name: 'Overview' }).waitFor();
  await page.locator('#stats').filter({ hasText: 'running' }).waitFor();
  await shot(page, '11-console-overview');

  // People: create carol; her one-time password is shown once and works.
  await page.getByRole('tab', { name: 'People' }).click();
  await page.locator('#add-user').getByLabel('User name').fill('carol');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#new-user-result').waitFor();
  const carolPw = (await page.locator('#new-user-password').textContent()).trim();
  assert.match(carolPw, /^[A-Z0-9]{4}(-[A-Z0-9]{4}){3}$/);
  await page.locator('tr[data-user=carol]').waitFor();
  await shot(page, '12-console-people');
  assert.equal((await matrixLogin(box, 'carol', carolPw)).status, 200);

  // Invitations: create one, redeem it in a second, unrelated browser context.
  await page.getByRole('tab', { name: 'Invitations' }).click();
  await page.getByLabel('Note (who it is for)').fill('Dave, new in logistics');
  await page.getByRole('button', { name: 'Create invitation' }).click();
  await page.locator('#invite-result').waitFor();
  const link = (await page.locator('#invite-link').textContent()).trim();
  assert.ok(link.startsWith(box.sbase + '/invite/#'), link);
  await page.locator('#invite-rows tr').filter({ hasText: 'open' }).waitFor();
  await shot(page, '13-console-invitations');

  const guest = await newPage(trusting, box.sbase, problems);
  await guest.page.goto(link);
  await guest.page.getByRole('heading', { name: 'Create your account' }).waitFor();
  assert.equal(new URL(guest.page.url()).hash, '', 'the code must leave the address bar');
  await guest.page.getByLabel('User name').fill('dave');
  await guest.page.getByLabel('Password', { exact: true }).fill('dave correct horse battery');
  await guest.page.getByLabel('Password again').fill('dave correct horse battery');
  await shot(guest.page, '14-invite-form');
  await guest.page.getByRole('button', { name: 'Create account' }).click();
  await guest.page.locator('#done').filter({ hasText: '@dave:box.lan' }).waitFor();
  await shot(guest.page, '15-invite-done');
  assert.equal((await matrixLogin(box, 'dave', 'dave correct horse battery')).status, 200);
  await guest.ctx.close();

  // Deactivate dave: his login then fails.
  await page.getByRole('tab', { name: 'People' }).click();
  const daveRow = page.locator('tr[data-user=dave]');
  await daveRow.getByRole('button', { name: 'Deactivate' }).click();
  await daveRow.filter({ hasText: 'deactivated' }).waitFor();
  await shot(page, '16-console-deactivated');
  const daveLogin = await matrixLogin(box, 'dave', 'dave correct horse battery');
  assert.notEqual(daveLogin.status, 200);

  // Audit log shows what alice did.
  await page.getByRole('tab', { name: 'Audit log' }).click();
  await page.locator('#audit-rows tr').filter({ hasText: 'user.deactivate' }).waitFor();
  await shot(page, '17-console-audit');
  await page.getByRole('tab', { name: 'Federation' }).click();
  await page.locator('#fed-state').filter({ hasText: 'off' }).waitFor();
  await shot(page, '18-console-federation');

  // Certificates: the root's fingerprint as on the trust page; a bad change is explained
  // and changes nothing.
  await page.getByRole('tab', { name: 'Certificates' }).click();
  await page.locator('#tls-mode').filter({ hasText: "the box's own authority" }).waitFor();
  assert.match(await page.locator('#tls-fingerprint').textContent(), /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  await page.getByLabel('A certificate I upload').check();
  await page.getByLabel('Certificate and chain (PEM)').fill('not a certificate');
  await page.getByLabel('Private key (PEM)').fill('not a key');
  await page.getByRole('button', { name: 'Switch' }).click();
  await page.locator('#cert_pem-error').filter({ hasText: /certificate/i }).waitFor();
  await shot(page, '18a-console-certificates');
  await page.reload();
  await page.getByRole('tab', { name: 'Certificates' }).click();
  await page.locator('#tls-mode').filter({ hasText: "the box's own authority" }).waitFor();

  // Calls: the relay is on; a bad port range is explained next to the field.
  await page.getByRole('tab', { name: 'Calls' }).click();
  await page.locator('#turn-stats').filter({ hasText: 'Relay' }).waitFor();
  assert.equal(await page.getByLabel('Relay switched on').isChecked(), true);
  await page.getByLabel('Relay ports (empty: 49160-49359)').fill('10-20');
  await page.locator('#turn-form button[type=submit]').click();
  await page.locator('#ports-error').filter({ hasText: 'at least 10 ports' }).waitFor();
  await shot(page, '18b-console-calls');
  await ctx.close();

  // carol is not an admin: the console refuses her.
  const other = await newPage(trusting, box.sbase, problems);
  await other.page.goto(box.sbase + '/admin/');
  await other.page.locator('#signin').getByLabel('User name').fill('carol');
  await other.page.locator('#signin').getByLabel('Password').fill(carolPw);
  await other.page.getByRole('button', { name: 'Sign in' }).click();
  await other.page.locator('#signin .error').filter({ hasText: 'not an administrator' }).waitFor();
  assert.equal(await other.page.locator('#app').isHidden(), true);
  await shot(other.page, '19-console-non-admin');
  await other.ctx.close();
});

test('snapshots: alert, recovery sheet, USB target, snapshot now, decryptable with the key shown', async () => {
  const { ctx, page } = await newPage(trusting, box.sbase, problems);
  page.on('dialog', (d) => d.accept());
  await page.goto(box.sbase + '/admin/');
  const signin = page.locator('#signin');
  await signin.getByLabel('User name').fill('alice');
  await signin.getByLabel('Password').fill(ADMIN_PW);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // A box with no snapshot target says so on the first screen.
  await page.locator('#overview-alerts').filter({ hasText: 'No snapshot target' }).waitFor();

  await page.getByRole('tab', { name: 'Snapshots' }).click();
  // The wizard made a recovery key; a new one can replace it (older snapshots keep the old one).
  await page.locator('#snap-recovery').filter({ hasText: /^set/ }).waitFor();
  assert.ok(setupRecoveryKey);
  await page.getByRole('button', { name: 'Create a new recovery key' }).click();
  await page.locator('#recovery-result').waitFor();
  const key = (await page.locator('#recovery-identity').textContent()).trim();
  assert.match(key, /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
  assert.ok(await page.locator('#recovery-qr svg path').count() === 1, 'no QR code drawn');
  assert.match(await page.locator('#recovery-fingerprint').textContent(), /^SHA256:/);
  await shot(page, '21-console-recovery-sheet');

  // A directory that does not exist (an unplugged USB drive) is refused with the reason.
  usb = mkdtempSync(join(tmpdir(), 'outpost-usb-'));
  const form = page.locator('#target-form');
  await form.getByLabel('Name').fill('usb');
  await form.getByLabel('Directory').fill(usb + '/not-mounted');
  await page.getByRole('button', { name: 'Test and add' }).click();
  await form.locator('.error[data-general]').filter({ hasText: 'not-mounted' }).waitFor();
  await form.getByLabel('Directory').fill(usb);
  await page.getByRole('button', { name: 'Test and add' }).click();
  await page.locator('tr[data-target=usb]').waitFor();
  await page.locator('#snap-target').filter({ hasText: 'usb' }).waitFor();

  await page.getByRole('button', { name: 'Take a snapshot now' }).click();
  await page.locator('#snap-now-result').filter({ hasText: 'verified restorable' }).waitFor({ timeout: 120000 });
  await page.locator('#snap-rows tr').filter({ hasText: 'complete' }).waitFor();
  assert.ok(await page.locator('#snap-alerts').isHidden(), 'alerts still shown after a verified snapshot');
  assert.doesNotMatch(await page.locator('#snap-verified').textContent(), /never/);
  await shot(page, '22-console-snapshots');

  // The key shown once opens the snapshot with Debian's age.
  const id = readdirSync(join(usb, 'snapshots'))[0];
  const keyFile = join(usb, 'key.txt');
  writeFileSync(keyFile, key + '\n', { mode: 0o600 });
  const manifest = JSON.parse(execFileSync('age', ['-d', '-i', keyFile, join(usb, 'snapshots', id, 'manifest.json.age')], { encoding: 'utf8' }));
  assert.equal(manifest.server_name, 'box.lan');
  rmSync(keyFile);
  restoreKey = key;
  await ctx.close();
});

let restoreKey = '';

test('setup page on a fresh box: restore from the USB snapshot, then sign in to the old accounts', async () => {
  const fresh = await startOutpost();
  try {
    const { ctx, page } = await newPage(browser, [fresh.base], problems);
    await page.goto(fresh.base + '/setup/');
    await page.getByLabel('Setup code').fill(fresh.claimCode());
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Restore from a snapshot' }).click();
    await page.getByRole('heading', { name: 'Restore from a snapshot' }).waitFor();
    const form = page.locator('#restore-form');
    await form.getByLabel('Directory').fill(usb);
    // The key the wizard showed at setup cannot open snapshots taken after it was replaced.
    await form.getByLabel('Recovery key').fill(setupRecoveryKey);
    await page.getByRole('button', { name: 'Find snapshots' }).click();
    await page.locator('#recovery_key-error').filter({ hasText: 'cannot decrypt' }).waitFor();
    await form.getByLabel('Recovery key').fill(restoreKey.toLowerCase());
    await page.getByRole('button', { name: 'Find snapshots' }).click();
    await page.locator('#restore-pick').waitFor();
    assert.equal(await page.locator('#restore-server').textContent(), 'box.lan');
    assert.match(await page.locator('#restore-fp').textContent(), /^SHA256:/);
    await shot(page, '23-wizard-restore-pick');
    await page.getByRole('button', { name: 'Restore this snapshot' }).click();
    await page.getByRole('heading', { name: 'Restored' }).waitFor({ timeout: 180000 });
    await shot(page, '24-wizard-restored');
    // The restored box is the old one: same accounts, same passwords, same root.
    assert.equal(fresh.rootPEM(), box.rootPEM());
    assert.equal((await matrixLogin(fresh, 'alice', ADMIN_PW)).status, 200);
    await ctx.close();
  } finally {
    await fresh.stop();
    rmSync(usb, { recursive: true, force: true });
  }
});

test('network: a wrong gateway refused with the field named, a fixed address tried and kept', async () => {
  const { ctx, page } = await newPage(trusting, box.sbase, problems);
  await page.goto(box.sbase + '/admin/');
  const signin = page.locator('#signin');
  await signin.getByLabel('User name').fill('alice');
  await signin.getByLabel('Password').fill(ADMIN_PW);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('tab', { name: 'Network' }).click();
  await page.locator('#net-applied').filter({ hasText: 'Automatic (DHCP)' }).waitFor();
  // make run on a laptop: settings are kept, the laptop's own network is left alone.
  assert.ok(await page.locator('#net-unmanaged').isVisible());

  const form = page.locator('#net-form');
  await form.getByLabel('Fixed address').check();
  await form.getByLabel('Address with prefix length').fill('192.168.17.10/24');
  await form.getByLabel('Gateway (router)').fill('192.168.18.1');
  await form.getByLabel(/DNS servers/).fill('192.168.17.1, 192.168.17.2');
  await page.getByRole('button', { name: 'Try it' }).click();
  await page.locator('#net-gateway-error').filter({ hasText: "not in the box's subnet 192.168.17.0/24" }).waitFor();
  assert.equal(await form.getByLabel('Gateway (router)').getAttribute('aria-invalid'), 'true');
  await form.getByLabel(/DNS servers/).fill('192.168.17.1, dns.lan');
  await form.getByLabel('Gateway (router)').fill('192.168.17.1');
  await page.getByRole('button', { name: 'Try it' }).click();
  await page.locator('#net-dns-error').filter({ hasText: 'use an IP address' }).waitFor();
  await shot(page, '26-console-network-error');

  await form.getByLabel(/DNS servers/).fill('192.168.17.1');
  await form.getByLabel(/Time servers/).fill('ntp.branch.lan');
  await page.getByRole('button', { name: 'Try it' }).click();
  await page.locator('#net-trial-text').filter({ hasText: /Goes back by itself in [0-9]:[0-9]{2}/ }).waitFor();
  await shot(page, '27-console-network-trial');
  await page.getByRole('button', { name: 'Keep it' }).click();
  await page.locator('#net-trial').waitFor({ state: 'hidden' });
  await page.locator('#net-last').filter({ hasText: 'kept: Fixed 192.168.17.10/24 via 192.168.17.1' }).waitFor();
  await page.locator('#net-applied').filter({ hasText: 'time from ntp.branch.lan' }).waitFor();
  // A laptop never asks time servers (nor DNS for their names): its clock is its own.
  assert.equal((await page.locator('#net-time').textContent()).trim(), "this computer's own");
  assert.equal(await page.locator('#net-result').textContent(), '');
  await shot(page, '28-console-network-kept');
  const audit = box.cli(['audit', '--json']);
  assert.match(audit, /network\.keep/);
  await ctx.close();
});

test('no request left the box and no page error occurred', () => {
  assert.deepEqual(problems, []);
});

test('the console fits a phone screen', async () => {
  const ctx = await trusting.newContext({ viewport: { width: 375, height: 740 }, isMobile: true });
  const page = await ctx.newPage();
  await page.goto(box.sbase + '/admin/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the phone screen`);
  await shot(page, '20-console-phone');
  await ctx.close();
});
