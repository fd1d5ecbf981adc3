/**
 * The web page in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core): log in,
 * power on and see the state change without reload, boot Once/Pxe read back, insert media from a
 * loopback URL until its task completes, the serial console's boot output and echo, logout and the
 * token refused; keyboard-only use and axe-core (0 serious/critical violations); screenshots of
 * each page (UI_SCREENSHOTS=docs/images rewrites the ones in docs/). The load timing is printed,
 * never asserted (timed assertions flake).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type Page } from 'playwright-core';
import WebSocket from 'ws';
import { requireClient } from '../helpers/clients.js';
import { startTestAgent, startTestFleet, type TestAgent } from '../helpers/agent.js';
import { LOOPBACK_MEDIA, startImageServer, type ImageServer } from '../helpers/images.js';
import { SolClient } from '../ipmi/sol-client.js';
import type { SharedAgent } from '../../src/agent/shared.js';
import type { UserAccount } from '../../src/accounts/types.js';
import { indicatorOf } from '../../src/backend/indicator.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = process.env.UI_SCREENSHOTS;
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

async function login(page: Page, base: string, user = 'admin', password = 'password', wait: string | null = '#app-view'): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByLabel('User name', { exact: true }).fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  if (wait) await page.locator(wait).waitFor({ state: 'visible' });
}

async function axe(page: Page): Promise<{ id: string; impact: string; nodes: number }[]> {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    const r = await (globalThis as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } }).axe.run();
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
  return result;
}

/** Presses Tab (Shift+Tab when `back`) until the focused element matches `selector`; fails after 60 presses. */
async function tabTo(page: Page, selector: string, back = false): Promise<void> {
  const test = `document.activeElement && document.activeElement.matches(${JSON.stringify(selector)})`;
  for (let i = 0; i < 60; i++) {
    if (await page.evaluate(test)) return;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  }
  throw new Error(`${selector} cannot be reached with the Tab key`);
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `ui-${name}.png`), fullPage: false });
}

describe('web UI in headless Chromium @e2e', function () {
  this.timeout(60_000);
  let browser: Browser;
  let t: TestAgent;
  let images: ImageServer;
  let page: Page;

  before(async function () {
    requireClient(this, existsSync(CHROMIUM), 'chromium (Debian package)');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
    t = await startTestAgent({ sim: { powerOnDelayMs: 50, initialPower: 'Off' } });
    images = await startImageServer();
  });
  after(async () => {
    await browser?.close();
    await t?.close();
    await images?.close();
  });
  beforeEach(async () => {
    page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  });
  afterEach(async () => {
    await page?.close();
  });

  it('answers the page with a strict CSP, nosniff and no framing; the CSP blocks nothing the page needs', async () => {
    const cspErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') cspErrors.push(m.text());
    });
    const started = Date.now();
    const res = await page.goto(`${t.redfishUrl}/ui/`);
    await page.getByLabel('User name', { exact: true }).waitFor();
    const interactive = Date.now() - started;
    // (browser-side code as strings: the test's TypeScript has no DOM types)
    const nav = (await page.evaluate(
      "(() => { const n = performance.getEntriesByType('navigation')[0]; return { domInteractive: n.domInteractive, domContentLoaded: n.domContentLoadedEventEnd }; })()",
    )) as { domInteractive: number; domContentLoaded: number };
    console.log(`      first load: login form usable after ${interactive} ms (domInteractive ${nav.domInteractive.toFixed(0)} ms, DOMContentLoaded ${nav.domContentLoaded.toFixed(0)} ms)`);
    const h = res!.headers();
    expect(h['content-security-policy']).to.include("script-src 'self'").and.include("frame-ancestors 'none'");
    expect(h['content-security-policy']).not.to.include('unsafe-inline');
    expect(h['x-content-type-options']).to.equal('nosniff');
    expect(h['set-cookie']).to.equal(undefined);
    expect(cspErrors).to.deep.equal([]);
  });

  it('logs in, powers on and shows the new state without a reload, live from SSE', async () => {
    await login(page, t.redfishUrl);
    expect(await page.locator('#ov-power').textContent()).to.equal('Off');
    await page.locator('#ov-live').filter({ hasText: 'live' }).waitFor();
    await shot(page, 'overview-off');
    await page.getByRole('link', { name: 'Power' }).click();
    await page.getByRole('button', { name: 'On', exact: true }).click();
    await page.locator('#pw-state[data-state="On"]').waitFor();
    expect(await t.sim.getPowerState()).to.equal('On');
    await shot(page, 'power');
    // a change made by someone else (another client) shows up too: the page follows the SSE stream
    const navigations = "performance.getEntriesByType('navigation').length";
    const before = await page.evaluate(navigations);
    await page.evaluate('window.__marker = 1'); // gone if the page reloaded
    await t.sim.power('forceOff');
    await page.locator('#pw-state[data-state="Off"]').waitFor();
    expect(await page.evaluate(navigations)).to.equal(before);
    expect(await page.evaluate('window.__marker')).to.equal(1);
    // destructive types ask first; cancelling sends nothing
    await t.sim.power('on');
    await page.locator('#pw-state[data-state="On"]').waitFor();
    await page.getByRole('button', { name: 'ForceOff' }).click();
    await page.locator('#confirm[open]').waitFor();
    await shot(page, 'power-confirm');
    await page.getByRole('button', { name: 'Cancel' }).click();
    expect(await t.sim.getPowerState()).to.equal('On');
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.locator('#ov-events li').first().waitFor();
    await shot(page, 'overview');
  });

  it('turns the identify light on and off from the overview (the indicator IPMI chassis identify shares)', async () => {
    await login(page, t.redfishUrl);
    await page.locator('#ov-identify', { hasText: 'off' }).waitFor();
    await page.getByRole('button', { name: 'Identify' }).click();
    await page.locator('#ov-identify', { hasText: 'blinking' }).waitFor();
    expect(indicatorOf(t.sim).led()).to.equal('Blinking');
    await page.getByRole('button', { name: 'Turn off' }).click();
    await page.locator('#ov-identify', { hasText: 'off' }).waitFor();
    expect(indicatorOf(t.sim).active()).to.equal(false);
  });

  it('sets boot Once/Pxe from the allowable values and reads it back after a reload', async () => {
    await login(page, t.redfishUrl);
    await page.getByRole('link', { name: 'Boot' }).click();
    await page.getByLabel('Boot source').selectOption('Pxe');
    await page.getByLabel('Override', { exact: true }).selectOption('Once');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.locator('#boot-current', { hasText: 'Pxe, Once' }).waitFor();
    const sys = (await (await fetch(`${t.redfishUrl}/redfish/v1/Systems/1`, { headers: { Authorization: `Basic ${Buffer.from('admin:password').toString('base64')}` } })).json()) as { Boot: Record<string, string> };
    expect(sys.Boot.BootSourceOverrideTarget).to.equal('Pxe');
    expect(sys.Boot.BootSourceOverrideEnabled).to.equal('Once');
    await page.reload();
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.locator('#boot-current', { hasText: 'Pxe, Once' }).waitFor();
    expect(await page.getByLabel('Boot source').inputValue()).to.equal('Pxe');
    await shot(page, 'boot');
  });

  it('inserts media from a loopback URL, follows the task to completion, ejects, and shows a Redfish error', async () => {
    await login(page, t.redfishUrl);
    await page.getByRole('link', { name: 'Virtual media' }).click();
    const cd = page.locator('#vm-Cd');
    await cd.getByLabel(/Image URL/).fill(images.url('/boot/installer.iso'));
    await cd.getByRole('button', { name: 'Insert' }).click();
    await cd.locator('[data-f="task"]', { hasText: 'Completed (OK)' }).waitFor();
    await cd.locator('[data-f="inserted"]', { hasText: /^Inserted$/ }).waitFor();
    expect(await cd.locator('[data-f="image"]').textContent()).to.equal(images.url('/boot/installer.iso'));
    await shot(page, 'media');
    await cd.getByRole('button', { name: 'Eject' }).click();
    await page.getByRole('button', { name: 'Confirm' }).click();
    await cd.locator('[data-f="inserted"]', { hasText: 'Not inserted' }).waitFor();
    // a URL the service refuses: its Redfish message is shown
    await cd.getByLabel(/Image URL/).fill('ftp://127.0.0.1/x.iso');
    await cd.getByRole('button', { name: 'Insert' }).click();
    const err = await cd.locator('[data-f="error"]').filter({ hasText: /\S/ }).textContent();
    expect(err).to.match(/ftp|protocol|TransferProtocolType|not supported|value/i);
  });

  it('opens the console: boot output, typed text echoed; ReadOnly gets no console; a second browser waits for the input', async () => {
    await t.sim.power('forceOff');
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await login(page, t.redfishUrl);
    await page.getByRole('link', { name: 'Serial console' }).click();
    await page.locator('#con-state[data-state="offline"]').waitFor();
    await t.sim.power('on');
    await page.locator('#con-state[data-state="connected"]').waitFor();
    const screen = page.locator('#terminal .xterm-rows');
    await screen.filter({ hasText: 'Booting' }).waitFor();
    await page.locator('#terminal').click();
    await page.keyboard.type('hello-ui');
    await page.keyboard.press('Enter');
    await screen.filter({ hasText: 'you typed: hello-ui' }).waitFor();
    // xterm's theme reaches the page through constructed sheets (the CSP refuses its <style> elements)
    const fg = await page.evaluate("getComputedStyle(document.querySelector('#terminal .xterm-rows')).color");
    expect(fg).to.equal('rgb(230, 230, 230)');
    console.log(`      console page: ${errors.length} console error(s)${errors.length ? `, e.g. ${errors[0]?.slice(0, 120)}` : ''}`);
    await shot(page, 'console');

    const viewer = await browser.newPage();
    try {
      await login(viewer, t.redfishUrl, 'viewer', 'viewer-pw');
      expect(await viewer.getByRole('link', { name: 'Accounts' }).count()).to.equal(0);
      expect(await viewer.getByRole('link', { name: 'My account' }).isVisible()).to.equal(true);
      await viewer.getByRole('link', { name: 'Power' }).click();
      expect(await viewer.locator('#pw-actions').isVisible()).to.equal(false);
      // ReadOnly cannot use the console (docs/ui.md): no link, the console route shows the overview
      expect(await viewer.getByRole('link', { name: 'Serial console' }).isVisible()).to.equal(false);
      await viewer.goto(`${t.redfishUrl}/#/console`);
      await viewer.locator('#page-overview').waitFor({ state: 'visible' });
      expect(await viewer.locator('#terminal .xterm').count()).to.equal(0);
    } finally {
      await viewer.close();
    }
    const second = await browser.newPage();
    try {
      await login(second, t.redfishUrl, 'operator', 'op-secret');
      await second.getByRole('link', { name: 'Serial console' }).click();
      await second.locator('#con-writer', { hasText: 'admin (browser) holds the console input' }).waitFor();
      await page.close();
      await second.locator('#con-writer', { hasText: 'You have the console input' }).waitFor();
    } finally {
      await second.close();
    }
  });

  it('lets IPMI SOL take the console input from the browser, which says so and takes it back when SOL ends', async () => {
    await t.sim.power('on');
    await login(page, t.redfishUrl);
    await page.getByRole('link', { name: 'Serial console' }).click();
    await page.locator('#con-writer', { hasText: 'You have the console input' }).waitFor();
    const sol = new SolClient({ port: t.ipmiPort });
    try {
      await sol.open();
      expect((await sol.activate()).cc).to.equal(0);
      await page.locator('#con-writer', { hasText: /IPMI SOL session 0x[0-9a-f]{8} took the console input/ }).waitFor();
      const before = t.sim.serialConsole.received.length;
      await page.locator('#terminal').click();
      await page.keyboard.type('x');
      await page.locator('#con-writer', { hasText: 'Input ignored' }).waitFor();
      expect(t.sim.serialConsole.received.length).to.equal(before);
      expect((await sol.deactivate()).cc).to.equal(0);
      await page.locator('#con-writer', { hasText: 'You have the console input' }).waitFor();
    } finally {
      sol.close();
    }
  });

  it('pages through the event log, newest first', async () => {
    const auth = { Authorization: `Basic ${Buffer.from('admin:password').toString('base64')}`, 'Content-Type': 'application/json' };
    const entries = `${t.redfishUrl}/redfish/v1/Managers/BMC/LogServices/EventLog/Entries`;
    for (let i = 0; i < 45; i++) {
      await fetch(`${t.redfishUrl}/redfish/v1/EventService/Actions/EventService.SubmitTestEvent`, { method: 'POST', headers: auth, body: JSON.stringify({ MessageId: 'ResourceEvent.1.4.3.ResourceCreated', Message: `test event ${i}` }) });
    }
    const all = ((await (await fetch(entries, { headers: auth })).json()) as { Members: { Id: string }[] }).Members;
    expect(all.length).to.be.greaterThan(40);
    const newest = Math.max(...all.map((e) => Number(e.Id))) + 1; // + the page's own login (ResourceCreated)
    await login(page, t.redfishUrl);
    await page.getByRole('link', { name: 'Event log' }).click();
    await page.locator('#log-page', { hasText: `Page 1 of ${Math.ceil(all.length / 20)}` }).waitFor();
    expect(await page.locator('#log-rows tr').count()).to.equal(20);
    expect(await page.locator('#log-rows tr td').first().textContent()).to.equal(String(newest));
    expect(await page.getByRole('button', { name: 'Newer' }).isDisabled()).to.equal(true);
    await page.getByRole('button', { name: 'Older' }).click();
    await page.locator('#log-page', { hasText: 'Page 2 of' }).waitFor();
    expect(await page.locator('#log-rows tr td').first().textContent()).to.equal(String(newest - 20));
  });

  it('logs out: the session is deleted and its token refused', async () => {
    await login(page, t.redfishUrl);
    const token = (await page.evaluate("JSON.parse(sessionStorage.getItem('kvbmc.session') || '{}').token || ''")) as string;
    expect(token).to.match(/^[0-9a-f]{64}$/);
    const ok = await fetch(`${t.redfishUrl}/redfish/v1/Systems/1`, { headers: { 'X-Auth-Token': token } });
    expect(ok.status).to.equal(200);
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.locator('#login-view').waitFor({ state: 'visible' });
    expect(await page.evaluate("sessionStorage.getItem('kvbmc.session')")).to.equal(null);
    const refused = await fetch(`${t.redfishUrl}/redfish/v1/Systems/1`, { headers: { 'X-Auth-Token': token } });
    expect(refused.status).to.equal(401);
    await shot(page, 'login');
  });

  it('is usable by keyboard alone and has no serious axe-core violations on any page', async () => {
    await page.goto(`${t.redfishUrl}/`);
    const loginViolations = await axe(page);
    // keyboard only: Tab to the fields, type, Enter
    await tabTo(page, '#login-user');
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type('password');
    await page.keyboard.press('Enter');
    await page.locator('#app-view').waitFor({ state: 'visible' });
    const all = [...loginViolations];
    for (const name of ['Overview', 'Power', 'Boot', 'Virtual media', 'Serial console', 'Event log', 'Accounts']) {
      // reach the link with Shift+Tab (focus is on the page heading after a navigation), activate with Enter
      await tabTo(page, `[data-nav="${{ Overview: 'overview', Power: 'power', Boot: 'boot', 'Virtual media': 'media', 'Serial console': 'console', 'Event log': 'log', Accounts: 'accounts' }[name]}"]`, true);
      await page.keyboard.press('Enter');
      await page.locator(`[data-nav][aria-current="page"]`, { hasText: name }).waitFor();
      if (name === 'Event log') {
        await page.locator('#log-rows tr').first().waitFor();
        await shot(page, 'log');
      }
      if (name === 'Accounts') {
        await page.locator('#acc-rows tr').first().waitFor();
        await shot(page, 'accounts');
      }
      all.push(...(await axe(page)));
    }
    // a destructive power action with the keyboard: focus, Enter, the dialog, Escape cancels
    await tabTo(page, '[data-nav="power"]', true);
    await page.keyboard.press('Enter');
    await page.locator('[data-reset="PowerCycle"]').waitFor();
    await tabTo(page, '[data-reset="PowerCycle"]');
    await page.keyboard.press('Enter');
    await page.locator('#confirm[open]').waitFor();
    expect(await page.evaluate('document.activeElement.id')).to.equal('confirm-cancel');
    await page.keyboard.press('Escape');
    await page.locator('#confirm:not([open])').waitFor({ state: 'attached' });
    // the skip link moves focus to the page heading and keeps the page
    await page.keyboard.press('Escape');
    await tabTo(page, '.skip', true);
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement.id')).to.equal('power-title');
    expect(await page.locator('#page-power').isVisible()).to.equal(true);
    const serious = all.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(serious, JSON.stringify(serious)).to.deep.equal([]);
  });

  it('refuses a console websocket from another origin, and one that does not authenticate', async () => {
    const url = `ws://127.0.0.1:${t.redfishPort}/ui/ws/console/1`;
    const foreign = new WebSocket(url, ['kvbmc.console.v1'], { origin: 'http://evil.example' });
    const status = await new Promise<number>((resolve) => foreign.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).to.equal(403);
    const bad = new WebSocket(url, ['kvbmc.console.v1'], { origin: `http://127.0.0.1:${t.redfishPort}` });
    await new Promise((r) => bad.once('open', r));
    bad.send(JSON.stringify({ type: 'auth', token: 'f'.repeat(64) }));
    const code = await new Promise<number>((resolve) => bad.once('close', (c) => resolve(c)));
    expect(code).to.equal(4401);
  });
});

const seriousOnly = (v: { impact: string }[]): { impact: string }[] => v.filter((x) => x.impact === 'serious' || x.impact === 'critical');

describe('web UI accounts and the password change, in headless Chromium @e2e', function () {
  // long flows (a dozen page loads): room for a loaded 2-core machine; nothing here is timed
  this.timeout(120_000);
  let browser: Browser;
  let t: TestAgent;
  const admin = { Authorization: `Basic ${Buffer.from('admin:password').toString('base64')}`, 'Content-Type': 'application/json' };

  before(async function () {
    requireClient(this, existsSync(CHROMIUM), 'chromium (Debian package)');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
    t = await startTestAgent({ sim: { initialPower: 'On' } });
    // a password policy to be refused by (AccountService MinPasswordLength)
    const r = await fetch(`${t.redfishUrl}/redfish/v1/AccountService`, { method: 'PATCH', headers: admin, body: JSON.stringify({ MinPasswordLength: 8 }) });
    expect(r.status).to.equal(200);
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  it('an Administrator adds a user who must change the password first, then sees the overview; the Administrator deletes it', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const user = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    try {
      await login(page, t.redfishUrl);
      await page.getByRole('link', { name: 'Accounts' }).click();
      await page.locator('#acc-rows tr[data-user="admin"]').waitFor();
      // too short for the policy: the Redfish message is shown, nothing is created
      await page.getByLabel('New user name').fill('newbie');
      await page.getByLabel('Initial password').fill('short');
      await page.locator('#acc-add').getByLabel('Role', { exact: true }).selectOption('Operator');
      await page.getByRole('button', { name: 'Add account' }).click();
      const tooShort = await page.locator('#acc-error').filter({ hasText: /\S/ }).textContent();
      expect(tooShort).to.match(/8 to 20 bytes/).and.match(/Password/);
      expect(await page.locator('#acc-rows tr[data-user="newbie"]').count()).to.equal(0);
      await page.getByLabel('Initial password').fill('first-pass-1');
      expect(await page.getByLabel('Must change the password at first login').isChecked()).to.equal(true);
      await page.getByRole('button', { name: 'Add account' }).click();
      const row = page.locator('#acc-rows tr[data-user="newbie"]');
      await row.waitFor();
      expect(await row.locator('td').allTextContents()).to.deep.equal([await row.locator('td').first().textContent(), 'newbie', 'Operator', 'yes', 'no', 'yes', 'Edit']);
      expect(await page.locator('#acc-error').textContent()).to.equal('');
      expect(seriousOnly(await axe(page)), 'accounts page').to.deep.equal([]);

      // the new user, keyboard only: log in, the password page is all there is, change it
      await user.goto(`${t.redfishUrl}/`);
      await tabTo(user, '#login-user');
      await user.keyboard.type('newbie');
      await user.keyboard.press('Tab');
      await user.keyboard.type('first-pass-1');
      await user.keyboard.press('Enter');
      await user.locator('#password-view').waitFor({ state: 'visible' });
      expect(await user.locator('#app-view').isVisible()).to.equal(false);
      expect(await user.evaluate('document.activeElement.id')).to.equal('chpw-new');
      await shot(user, 'password-change');
      expect(seriousOnly(await axe(user)), 'password page').to.deep.equal([]);
      // the server enforces it too: the same token is refused everything else
      const token = (await user.evaluate("JSON.parse(sessionStorage.getItem('kvbmc.session') || '{}').token || ''")) as string;
      const refused = await fetch(`${t.redfishUrl}/redfish/v1/Systems/1`, { headers: { 'X-Auth-Token': token } });
      expect(refused.status).to.equal(403);
      expect(JSON.stringify(await refused.json())).to.include('PasswordChangeRequired');
      // a reload keeps the user on the password page
      await user.reload();
      await user.locator('#password-view').waitFor({ state: 'visible' });
      // two different entries are refused on the page, a short one by the service
      await user.keyboard.type('second-pass-2');
      await user.keyboard.press('Tab');
      await user.keyboard.type('second-pass-3');
      await user.keyboard.press('Enter');
      await user.locator('#password-error', { hasText: 'The two passwords differ.' }).waitFor();
      await user.getByLabel('New password', { exact: true }).fill('tiny');
      await user.getByLabel('Repeat the new password').fill('tiny');
      await user.getByRole('button', { name: 'Change password' }).click();
      await user.locator('#password-error', { hasText: /8 to 20 bytes/ }).waitFor();
      await tabTo(user, '#chpw-new', true);
      await user.keyboard.press('Control+A');
      await user.keyboard.type('second-pass-2');
      await user.keyboard.press('Tab');
      await user.keyboard.press('Control+A');
      await user.keyboard.type('second-pass-2');
      await user.keyboard.press('Enter');
      await user.locator('#page-overview').waitFor({ state: 'visible' });
      await user.locator('#ov-power[data-state="On"]').waitFor();
      expect(await user.locator('#who').textContent()).to.equal('newbie (Operator)');
      // InsertMedia needs ConfigureManager, which an Operator lacks: the media page shows no Insert form
      await user.getByRole('link', { name: 'Virtual media' }).click();
      await user.locator('#vm-Cd').waitFor();
      expect(await user.locator('#vm-Cd').getByRole('button', { name: 'Insert' }).isVisible()).to.equal(false);
      await user.getByRole('link', { name: 'Overview' }).click();
      expect((await fetch(`${t.redfishUrl}/redfish/v1/Systems/1`, { headers: { 'X-Auth-Token': token } })).status).to.equal(200);
      // an Operator has "My account" (own password), no account management
      await user.getByRole('link', { name: 'My account' }).click();
      await user.locator('#acc-rows tr[data-user="newbie"]').waitFor();
      expect(await user.locator('#acc-rows tr').count()).to.equal(1);
      expect(await user.locator('#acc-add-card').isVisible()).to.equal(false);
      expect(await user.getByRole('button', { name: 'Edit' }).count()).to.equal(0);
      await user.getByLabel('My new password', { exact: true }).fill('third-pass-3');
      await user.getByLabel('Repeat my new password').fill('third-pass-3');
      await user.getByRole('button', { name: 'Change my password' }).click();
      await user.locator('#status', { hasText: 'Your password is changed.' }).waitFor();
      const basic = (pw: string) => ({ Authorization: `Basic ${Buffer.from(`newbie:${pw}`).toString('base64')}` });
      expect((await fetch(`${t.redfishUrl}/redfish/v1/Systems/1`, { headers: basic('third-pass-3') })).status).to.equal(200);

      // the Administrator deletes it, keyboard only from the row's Edit button
      await page.reload();
      await page.locator('#acc-rows tr[data-user="newbie"]').waitFor();
      await tabTo(page, '[data-edit="newbie"]');
      await page.keyboard.press('Enter');
      await page.locator('#acc-edit-card').waitFor({ state: 'visible' });
      expect(await page.evaluate('document.activeElement.id')).to.equal('acc-edit-title');
      await shot(page, 'account-edit');
      expect(seriousOnly(await axe(page)), 'accounts page with the edit form').to.deep.equal([]);
      await tabTo(page, '#edit-delete');
      await page.keyboard.press('Enter');
      await page.locator('#confirm[open]').waitFor();
      await page.getByRole('button', { name: 'Confirm' }).click();
      await page.locator('#status', { hasText: 'Account newbie deleted.' }).waitFor();
      expect(await page.locator('#acc-rows tr[data-user="newbie"]').count()).to.equal(0);
      expect((await fetch(`${t.redfishUrl}/redfish/v1/Systems/1`, { headers: basic('third-pass-3') })).status).to.equal(401);
    } finally {
      await user.close();
      await page.close();
    }
  });

  it('shows the last-Administrator refusal and changes nothing; edits role, enabled and unlock of another account', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    try {
      await login(page, t.redfishUrl);
      await page.getByRole('link', { name: 'Accounts' }).click();
      await page.getByRole('button', { name: 'Edit account admin' }).click();
      const err = page.locator('#acc-error');
      await page.getByRole('button', { name: 'Delete account' }).click();
      await page.getByRole('button', { name: 'Confirm' }).click();
      await err.filter({ hasText: 'last enabled Administrator' }).waitFor();
      expect(await page.locator('#acc-rows tr[data-user="admin"]').count()).to.equal(1);
      await page.getByRole('button', { name: 'Close' }).click();
      expect(await page.evaluate('document.activeElement.dataset.edit')).to.equal('admin');
      await page.keyboard.press('Enter');
      expect(await err.textContent()).to.equal('');
      await page.locator('#acc-edit').getByLabel('Role', { exact: true }).selectOption('ReadOnly');
      await page.getByRole('button', { name: 'Save' }).click();
      await err.filter({ hasText: 'last enabled Administrator' }).waitFor();
      expect(await page.locator('#acc-rows tr[data-user="admin"] td').nth(2).textContent()).to.equal('Administrator');
      const me = await fetch(`${t.redfishUrl}/redfish/v1/AccountService/Accounts`, { headers: admin });
      expect(me.status).to.equal(200);
      await shot(page, 'accounts-last-admin');
      await page.getByRole('button', { name: 'Close' }).click();
      // lock the operator out (wrong passwords), then unlock, demote and disable it from the page
      const bad = { Authorization: `Basic ${Buffer.from('operator:wrong').toString('base64')}` };
      for (let i = 0; i < 10; i++) await fetch(`${t.redfishUrl}/redfish/v1/Systems/1`, { headers: bad });
      await page.reload();
      const row = page.locator('#acc-rows tr[data-user="operator"] td');
      await row.first().waitFor();
      expect(await row.nth(4).textContent()).to.equal('yes');
      await page.getByRole('button', { name: 'Edit account operator' }).click();
      await page.getByRole('button', { name: 'Unlock' }).click();
      await page.locator('#status', { hasText: 'Account operator unlocked.' }).waitFor();
      expect(await row.nth(4).textContent()).to.equal('no');
      await page.locator('#acc-edit').getByLabel('Role', { exact: true }).selectOption('ReadOnly');
      await page.locator('#acc-edit').getByLabel('Enabled', { exact: true }).uncheck();
      await page.getByRole('button', { name: 'Save' }).click();
      await page.locator('#status', { hasText: 'Account operator saved.' }).waitFor();
      expect(await row.allTextContents()).to.deep.equal([await row.first().textContent(), 'operator', 'ReadOnly', 'no', 'no', 'no', 'Edit']);
      const acct = (await (await fetch(`${t.redfishUrl}/redfish/v1/AccountService/Accounts/${await row.first().textContent()}`, { headers: admin })).json()) as Record<string, unknown>;
      expect(acct).to.include({ RoleId: 'ReadOnly', Enabled: false, Locked: false });
    } finally {
      await page.close();
    }
  });
});

describe('web UI in shared mode: the system picker, in headless Chromium @e2e', function () {
  // long flows (a dozen page loads): room for a loaded 2-core machine; nothing here is timed
  this.timeout(120_000);
  let browser: Browser;
  let agent: SharedAgent;
  let base: string;
  let machines: Map<string, SimulatedMachine>;
  // ops: the same credentials on vm-a and vm-b; vm-c has an ops with another password, and solo
  // adm2: Administrator (virtual media needs ConfigureManager) on vm-a and vm-b
  const ADM2: UserAccount = { username: 'adm2', password: 'adm2-shared-pw', role: 'Administrator' };
  const ACCOUNTS: Record<string, UserAccount[]> = {
    // mixed: the same credentials with another role on each of its two systems
    'sim.vm-a': [{ username: 'ops', password: 'ops-shared-pw', role: 'Operator' }, { username: 'mixed', password: 'mixed-pw', role: 'Operator' }, ADM2],
    'sim.vm-b': [{ username: 'ops', password: 'ops-shared-pw', role: 'Operator' }, { username: 'mixed', password: 'mixed-pw', role: 'ReadOnly' }, ADM2],
    'sim.vm-c': [{ username: 'ops', password: 'other-ops-pw', role: 'Administrator' }, { username: 'solo', password: 'solo-pw', role: 'Administrator' }],
  };

  before(async function () {
    requireClient(this, existsSync(CHROMIUM), 'chromium (Debian package)');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
    ({ agent, machines, base } = await startTestFleet({ accounts: ACCOUNTS, sim: { initialPower: 'On', mediaProbe: { egress: LOOPBACK_MEDIA } } }));
  });
  after(async () => {
    await browser?.close();
    await agent?.close();
  });

  it("lists only the caller's systems, opens the chosen one (its links and its console), and switches", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    try {
      await login(page, base, 'ops', 'ops-shared-pw', '#picker-view');
      const buttons = page.locator('#picker-list button');
      await buttons.first().waitFor();
      expect(await page.locator('#picker-list [data-system]').evaluateAll((b) => b.map((x) => x.getAttribute('data-system')))).to.deep.equal(['sim.vm-a', 'sim.vm-b']);
      expect(await page.locator('#app-view').isVisible()).to.equal(false);
      await shot(page, 'picker');
      expect(seriousOnly(await axe(page)), 'picker').to.deep.equal([]);
      // keyboard: Tab to the second system, Enter
      await tabTo(page, '[data-system="sim.vm-b"]');
      await page.keyboard.press('Enter');
      await page.locator('#page-overview').waitFor({ state: 'visible' });
      await page.locator('#ov-name', { hasText: 'vm-b' }).waitFor();
      expect(await page.locator('#system-name').textContent()).to.include('vm-b');
      // its own manager's event log (the link of the system, not /Managers/BMC)
      await page.getByRole('link', { name: 'Event log' }).click();
      await page.locator('#log-page', { hasText: 'Page 1 of' }).waitFor();
      // its own console, on the shared port
      await page.getByRole('link', { name: 'Serial console' }).click();
      await page.locator('#con-state[data-state="connected"]').waitFor();
      await page.locator('#terminal').click();
      await page.keyboard.type('to-b');
      await page.keyboard.press('Enter');
      await page.locator('#terminal .xterm-rows').filter({ hasText: 'you typed: to-b' }).waitFor();
      const got = (id: string): string => Buffer.concat((machines.get(id) as SimulatedMachine).serialConsole.received).toString();
      expect(got('sim.vm-b')).to.include('to-b');
      expect(got('sim.vm-a')).not.to.include('to-b');
      // power acts on the chosen system only
      await page.getByRole('link', { name: 'Power' }).click();
      await page.getByRole('button', { name: 'ForceOff' }).click();
      await page.getByRole('button', { name: 'Confirm' }).click();
      await page.locator('#pw-state[data-state="Off"]').waitFor();
      expect(await machines.get('sim.vm-b')!.getPowerState()).to.equal('Off');
      expect(await machines.get('sim.vm-a')!.getPowerState()).to.equal('On');
      // the choice survives a reload; "Systems" goes back to the picker
      await page.reload();
      await page.locator('#system-name', { hasText: 'vm-b' }).waitFor();
      await page.locator('#pw-state[data-state="Off"]').waitFor();
      await page.getByRole('button', { name: 'Systems' }).click();
      await page.locator('#picker-view').waitFor({ state: 'visible' });
      await page.locator('[data-system="sim.vm-a"]').click();
      await page.locator('#system-name', { hasText: 'vm-a' }).waitFor();
      await page.locator('#pw-state[data-state="On"]').waitFor();
    } finally {
      await page.close();
    }
  });

  it("follows the chosen system live on the shared SSE stream; another system's change does not show", async () => {
    const a = machines.get('sim.vm-a') as SimulatedMachine;
    const b = machines.get('sim.vm-b') as SimulatedMachine;
    await a.power('on');
    await b.power('forceOff');
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const systemReads: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'GET' && /\/redfish\/v1\/Systems\/sim\.vm-[ab]$/.test(new URL(r.url()).pathname)) systemReads.push(new URL(r.url()).pathname);
    });
    try {
      await login(page, base, 'ops', 'ops-shared-pw', '#picker-view');
      await page.locator('[data-system="sim.vm-b"]').click();
      await page.locator('#ov-name', { hasText: 'vm-b' }).waitFor();
      await page.locator('#ov-power[data-state="Off"]').waitFor();
      await page.locator('#ov-live', { hasText: 'live' }).waitFor();
      const onLine = page.locator('#ov-events li', { hasText: "'/redfish/v1/Systems/sim.vm-b' has powered on" });
      const seen = await onLine.count();
      systemReads.length = 0;
      // vm-a first, then vm-b, outside the page: the stream delivers in that order, so vm-a's
      // event reached the page before vm-b's shows
      await a.power('forceOff');
      await b.power('on');
      await page.locator('#ov-power[data-state="On"]').waitFor();
      await onLine.nth(seen).waitFor();
      expect(await page.locator('#ov-events').textContent()).not.to.include('sim.vm-a');
      expect(await page.locator('#system-name').textContent()).to.include('vm-b');
      // only the chosen system was re-read (the event's), never vm-a
      expect(systemReads.length).to.be.greaterThan(0);
      expect(systemReads.every((p) => p === '/redfish/v1/Systems/sim.vm-b')).to.equal(true);
    } finally {
      await page.close();
      await a.power('on');
    }
  });

  it("inserts media into the chosen system (not the session's first) and follows its task to completion", async () => {
    const images = await startImageServer();
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    try {
      await login(page, base, 'adm2', 'adm2-shared-pw', '#picker-view');
      await page.locator('[data-system="sim.vm-b"]').click();
      await page.locator('#system-name', { hasText: 'vm-b' }).waitFor();
      await page.getByRole('link', { name: 'Virtual media' }).click();
      const cd = page.locator('#vm-Cd');
      await cd.getByLabel(/Image URL/).fill(images.url('/boot/installer.iso'));
      await cd.getByRole('button', { name: 'Insert' }).click();
      await cd.locator('[data-f="task"]', { hasText: 'Completed (OK)' }).waitFor();
      await cd.locator('[data-f="inserted"]', { hasText: /^Inserted$/ }).waitFor();
      // the task is vm-b's, and its id names it (vm-a is the session's home, ids sorted)
      expect(await cd.locator('[data-f="task"]').textContent()).to.match(/^Task 2-\d+:/);
      const media = async (id: string): Promise<string> => JSON.stringify(await (machines.get(id) as SimulatedMachine).snapshot());
      expect(await media('sim.vm-b')).to.include('installer.iso');
      expect(await media('sim.vm-a')).not.to.include('installer.iso');
      await cd.getByRole('button', { name: 'Eject' }).click();
      await page.getByRole('button', { name: 'Confirm' }).click();
      await cd.locator('[data-f="inserted"]', { hasText: 'Not inserted' }).waitFor();
    } finally {
      await page.close();
      await images.close();
    }
  });

  it('hides the controls on a system where the role is read-only and shows them where it may act', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    try {
      await login(page, base, 'mixed', 'mixed-pw', '#picker-view');
      await page.locator('[data-system="sim.vm-b"]').click();
      await page.locator('#ov-name', { hasText: 'vm-b' }).waitFor();
      expect(await page.locator('#who').textContent()).to.include('read-only on this system');
      expect(await page.getByRole('link', { name: 'Serial console' }).isVisible()).to.equal(false);
      await page.getByRole('link', { name: 'Power' }).click();
      await page.locator('#pw-readonly').waitFor({ state: 'visible' });
      expect(await page.locator('#pw-actions').isVisible()).to.equal(false);
      // the service agrees: ReadOnly on vm-b
      const login2 = await fetch(`${base}/redfish/v1/Systems/sim.vm-b/Actions/ComputerSystem.Reset`, {
        method: 'POST',
        headers: { Authorization: `Basic ${Buffer.from('mixed:mixed-pw').toString('base64')}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ ResetType: 'On' }),
      });
      expect(login2.status).to.equal(403);
      await page.getByRole('button', { name: 'Systems' }).click();
      await page.locator('[data-system="sim.vm-a"]').click();
      await page.locator('#system-name', { hasText: 'vm-a' }).waitFor();
      expect(await page.locator('#who').textContent()).not.to.include('read-only');
      await page.getByRole('link', { name: 'Power' }).click();
      await page.getByRole('button', { name: 'ForceOff' }).waitFor();
      expect(await page.locator('#pw-readonly').isVisible()).to.equal(false);
      expect(await page.getByRole('link', { name: 'Serial console' }).isVisible()).to.equal(true);
    } finally {
      await page.close();
    }
  });

  it('goes straight to the only system of a caller who has one', async () => {
    const page = await browser.newPage();
    try {
      await login(page, base, 'solo', 'solo-pw');
      await page.locator('#ov-name', { hasText: 'vm-c' }).waitFor();
      expect(await page.locator('#picker-view').isVisible()).to.equal(false);
      expect(await page.getByRole('button', { name: 'Systems' }).isVisible()).to.equal(false);
    } finally {
      await page.close();
    }
  });
});
