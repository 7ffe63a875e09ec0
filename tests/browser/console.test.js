// The admin console (/admin, served by Cardinal) in headless Chromium: a wrong token is refused
// clearly; an admin signs in, finds an identity, opens its timeline, revokes a card with a
// reason (the same operation, event and counter as POST /v1/admin/cards/{id}/revoke), sees it
// in the event log, signs out. The page makes no request to another origin and logs no error.
// Screenshots of each view go to $CARDINAL_SCREENSHOTS (default target/screenshots).
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const puppeteer = require('puppeteer-core');
const { startCardinal } = require('./harness');

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/lib/chromium/chromium';
const SHOTS = process.env.CARDINAL_SCREENSHOTS || path.resolve(__dirname, '../../target/screenshots');

let cardinal, browser, profile, adminToken;
const cards = {};

function cli(args, extraEnv = {}) {
  return execFileSync(cardinal.bin, args, { env: { ...cardinal.env, ...extraEnv }, cwd: cardinal.dir, stdio: 'pipe' })
    .toString().trim();
}

function userToken(identity) {
  return cli(['token', '--key', cardinal.keyFile, '--kid', cardinal.kid, '--app', cardinal.appId, '--identity', identity]);
}

function publish(identity, keyName, previous) {
  const keyFile = path.join(cardinal.dir, `${keyName}.pem`);
  cli(['keygen', '--out', keyFile]);
  const args = previous ? ['rotate', '--previous', previous, '--key', keyFile] : ['publish', '--key', keyFile];
  const out = cli([...args, '--url', cardinal.url, '--json'], { CARDINAL_TOKEN: userToken(identity) });
  return JSON.parse(out).id;
}

before(async () => {
  cardinal = await startCardinal({ allowedOrigins: [] });
  const adminKey = path.join(cardinal.dir, 'admin.pem');
  cli(['key', 'generate', '--app', cardinal.appId, '--role', 'admin', '--out', adminKey, '--kid', 'console-admin']);
  adminToken = cli(['token', '--key', adminKey, '--kid', 'console-admin', '--app', cardinal.appId, '--identity', 'oncall']);
  cards.alice1 = publish('alice', 'alice-1');
  cards.alice2 = publish('alice', 'alice-2', cards.alice1);
  cards.alicia = publish('alicia', 'alicia-1');
  cards.bob = publish('bob', 'bob-1');
  fs.mkdirSync(SHOTS, { recursive: true });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cardinal-chromium-'));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  if (process.env.CARDINAL_BROWSER_PIDS) fs.appendFileSync(process.env.CARDINAL_BROWSER_PIDS, `${browser.process().pid}\n`);
});

after(async () => {
  if (browser) await browser.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  if (cardinal) await cardinal.stop();
});

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `console-${name}.png`), fullPage: true });
}

async function text(page, selector) {
  await page.waitForSelector(selector, { visible: true, timeout: 10000 });
  return page.$eval(selector, (node) => node.textContent);
}

for (const viewport of [{ name: 'laptop', width: 1280, height: 800 }, { name: 'phone', width: 390, height: 844, isMobile: true }]) {
  test(`the console on a ${viewport.name}: sign in, find, revoke with a reason, see the event, sign out`, async () => {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.setViewport(viewport);
    const problems = [];
    const elsewhere = [];
    page.on('console', (message) => { if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text()); });
    page.on('pageerror', (error) => problems.push(String(error)));
    page.on('request', (request) => { if (!request.url().startsWith(`${cardinal.url}/`)) elsewhere.push(request.url()); });
    try {
      const response = await page.goto(`${cardinal.url}/admin`, { waitUntil: 'networkidle0' });
      const csp = response.headers()['content-security-policy'];
      assert.match(csp, /script-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      await page.waitForSelector('#sign-in', { visible: true });
      if (viewport.name === 'laptop') await shot(page, 'sign-in');

      // A wrong token: a clear error, still signed out, nothing kept.
      await page.type('#token', 'Bearer not.a.token');
      await page.click('#sign-in-form button[type=submit]');
      const refused = await text(page, '#error');
      assert.match(refused, /not accepted/);
      assert.match(refused, /token_invalid/);
      assert.equal(await page.evaluate(() => sessionStorage.length), 0);
      // An app (not admin) token: told it is not an admin token.
      await page.type('#token', userToken('alice'));
      await page.click('#sign-in-form button[type=submit]');
      await page.waitForFunction(() => /not an admin token/.test(document.querySelector('#error').textContent));

      // Sign in with the keyboard.
      await page.focus('#token');
      await page.keyboard.type(adminToken);
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      const intact = await text(page, '#log-status');
      assert.match(intact, /Event log intact: \d+ events verified/);
      assert.match(await text(page, '#transparency-status'), /Transparency log \S+: \d+ entries/);
      assert.equal(await page.evaluate(() => document.cookie), '', 'no cookie');
      assert.ok(!page.url().includes(adminToken.slice(0, 20)), 'the token is never in a URL');
      if (viewport.name === 'laptop') await shot(page, 'overview');

      // Find alice.
      await page.click('nav a[href="#/identities"]');
      await page.waitForSelector('#prefix', { visible: true });
      await page.type('#prefix', 'ali');
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.querySelectorAll('#identities tbody tr').length === 2);
      const listed = await page.$$eval('#identities tbody tr td:first-child', (cells) => cells.map((c) => c.textContent));
      assert.deepEqual(listed, ['alice', 'alicia']);
      if (viewport.name === 'laptop') await shot(page, 'identities');

      // Her timeline: root then rotation, both signatures verified.
      await page.click('#identities a[href="#/identity/alice"]');
      await page.waitForSelector('#identity-name', { visible: true });
      const timeline = await page.$$eval('.timeline > li', (items) => items.map((li) => ({
        card: li.dataset.card, status: li.querySelector('.status').textContent, checks: li.textContent,
      })));
      if (viewport.name === 'laptop') {
        assert.deepEqual(timeline.map((t) => [t.card, t.status]), [[cards.alice1, 'superseded'], [cards.alice2, 'active']]);
      }
      assert.ok(timeline.every((t) => /self signature verifies/.test(t.checks) && /countersignature verifies/.test(t.checks)));
      if (viewport.name === 'laptop') await shot(page, 'timeline');

      if (viewport.name === 'laptop') {
        // Revoke: a reason is required, and it asks first.
        await page.click(`button[data-card="${cards.alice2}"]`);
        await page.waitForSelector('#confirm[open]');
        await page.click('#confirm-ok');
        assert.ok(await page.$('#confirm[open]'), 'an empty reason does not revoke');
        await page.type('#reason', 'lost her phone');
        if (viewport.name === 'laptop') await shot(page, 'revoke');
        await page.click('#confirm-ok');
        await page.waitForFunction(() => /Revoked the chain/.test(document.querySelector('#notice').textContent));
        await page.waitForFunction((id) => document.querySelector(`li[data-card="${id}"] .status`)?.textContent === 'revoked', {}, cards.alice2);
        const revokedText = await page.$eval(`li[data-card="${cards.alice2}"]`, (li) => li.textContent);
        assert.match(revokedText, /lost her phone/);
        assert.match(revokedText, /admin:oncall/);

        // The same operation as the admin API: its event and its counter.
        const events = await (await fetch(`${cardinal.url}/v1/admin/events?limit=1000`, { headers: { Authorization: `Bearer ${adminToken}` } })).json();
        const last = events.events.at(-1).event;
        assert.equal(last.kind, 'chain_revoked');
        assert.equal(last.actor, 'admin:oncall');
        assert.equal(last.detail.reason, 'lost her phone');
        assert.equal(last.card_id, cards.alice2);
        const metrics = await (await fetch(`${cardinal.url}/metrics`)).text();
        assert.match(metrics, /cardinal_chains_revoked_total\{by="admin"\} 1/);

        await page.click('nav a[href="#/events"]');
        await page.waitForFunction(() => [...document.querySelectorAll('#events tbody tr')].some((tr) => /chain_revoked/.test(tr.textContent) && /lost her phone/.test(tr.textContent)));
        assert.match(await text(page, '#log-status'), /^Intact/);
        await shot(page, 'events');
        await page.click('nav a[href="#/keys"]');
        await page.waitForFunction(() => /console-admin/.test(document.querySelector('#keys')?.textContent || ''));
        await shot(page, 'keys');
      } else {
        await shot(page, 'phone-timeline');
      }

      await page.click('#sign-out');
      await page.waitForSelector('#sign-in', { visible: true });
      assert.equal(await page.evaluate(() => sessionStorage.length), 0);
      assert.deepEqual(elsewhere, [], 'the console requests nothing from another origin');
      const unexpected = problems.filter((p) => !/status of 40[13]/.test(p));
      assert.deepEqual(unexpected, [], 'no console errors beyond the refused sign-ins');
    } finally {
      await context.close();
    }
  });
}
