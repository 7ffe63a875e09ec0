// @virgilsecurity/e3kit-browser (2.5.5 and 3.0.5, bundled unmodified by build.js) in headless
// Chromium against a freshly started Cardinal on another origin: two users in separate
// browser contexts register, find each other, exchange signed and encrypted messages, rotate a
// key; a verifier pinned to Cardinal's service key; and a page from an origin CORS refuses.
'use strict';
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const puppeteer = require('puppeteer-core');
const { initCrypto, VirgilCrypto, VirgilAccessTokenSigner } = require('virgil-crypto');
const { JwtGenerator } = require('virgil-sdk');
const { startCardinal } = require('./harness');
const { startPageServer } = require('./server');

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/lib/chromium/chromium';
const LINES = {
  '2.5': require('@virgilsecurity/e3kit-browser/package.json').version,
  '3.0': require('e3kit-browser-3/package.json').version,
};
// What Chromium itself logs when CORS blocks a request; expected only on the refused origin.
const CORS_CONSOLE = [/has been blocked by CORS policy/, /^Failed to load resource: net::ERR_FAILED$/];

let cardinal, pageServer, refusedServer, browser, profile, virgilCrypto, generator;

before(async () => {
  pageServer = await startPageServer();
  refusedServer = await startPageServer();
  cardinal = await startCardinal({ allowedOrigins: [pageServer.origin] });
  await initCrypto();
  virgilCrypto = new VirgilCrypto();
  generator = new JwtGenerator({
    appId: cardinal.appId,
    apiKeyId: cardinal.kid,
    apiKey: virgilCrypto.importPrivateKey(cardinal.apiKeyDer),
    accessTokenSigner: new VirgilAccessTokenSigner(virgilCrypto),
  });
  const mint = (identity) => generator.generateToken(identity).toString();
  pageServer.setMint(mint);
  refusedServer.setMint(mint);
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cardinal-chromium-'));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true, // puppeteer adds --headless=new
    userDataDir: profile,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  // For ./run's clean-up should this process die without closing the browser.
  if (process.env.CARDINAL_BROWSER_PIDS) fs.appendFileSync(process.env.CARDINAL_BROWSER_PIDS, `${browser.process().pid}\n`);
});

after(async () => {
  if (browser) await browser.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  if (cardinal) await cardinal.stop();
  if (pageServer) await pageServer.close();
  if (refusedServer) await refusedServer.close();
});

// One device: its own browser context (separate IndexedDB, so separate e3kit key storage) with
// the test page of one e3kit line loaded from `origin`, and everything the page did recorded.
async function openDevice(identity, line, origin = pageServer.origin) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  const record = { pageErrors: [], consoleErrors: [], requests: [] };
  page.on('pageerror', (error) => record.pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') record.consoleErrors.push(message.text());
  });
  page.on('request', (request) => {
    record.requests.push(`${request.method()} ${request.url()}`);
    const agent = request.headers()['virgil-agent'];
    if (agent) record.agent = agent;
  });
  await page.goto(`${origin}/?e3kit=${line}`, { waitUntil: 'load' });
  // The bundle defines window.cardinal; an uncaught error while it loads fails at once.
  let onError;
  const broken = new Promise((resolve, reject) => {
    onError = (error) => reject(new Error(`${identity}: the page failed to load: ${error}`));
    page.once('pageerror', onError);
  });
  try {
    await Promise.race([page.waitForFunction(() => window.cardinal !== undefined, { timeout: 30000 }), broken]);
  } finally {
    page.off('pageerror', onError);
  }
  const run = (step, ...args) => page.evaluate((s, a) => window.cardinal.run(s, ...a), step, args);
  const device = {
    identity, origin, context, page, record, run,
    async ok(step, ...args) {
      const result = await run(step, ...args);
      if (result.error) assert.fail(`${identity}: ${step} failed: ${result.error.text}`);
      return result.value;
    },
    async fails(step, ...args) {
      const result = await run(step, ...args);
      assert.ok(result.error, `${identity}: ${step} should have failed, got ${JSON.stringify(result.value)}`);
      return result.error;
    },
    // No uncaught page error, no console error but the expected ones, and requests only to
    // the page's own origin and Cardinal's.
    assertClean(expectedConsole = []) {
      assert.deepEqual(record.pageErrors, [], `${identity}: uncaught page errors`);
      const unexpected = record.consoleErrors.filter((text) => !expectedConsole.some((re) => re.test(text)));
      assert.deepEqual(unexpected, [], `${identity}: unexpected console errors`);
      const foreign = record.requests.filter((line) => {
        const url = line.slice(line.indexOf(' ') + 1);
        return !url.startsWith('data:') && ![origin, cardinal.url].includes(new URL(url).origin);
      });
      assert.deepEqual(foreign, [], `${identity}: requests to other origins`);
    },
    close: () => context.close(),
  };
  assert.equal(await device.ok('initialize', identity, cardinal.url), identity);
  return device;
}

async function withDevices(identities, line, body, origin) {
  const devices = [];
  try {
    for (const identity of identities) devices.push(await openDevice(identity, line, origin));
    await body(...devices);
  } finally {
    await Promise.all(devices.map((device) => device.close()));
  }
}

// Cardinal seen from outside any browser: what a search for this identity answers.
async function searchFromNode(identity) {
  const response = await fetch(`${cardinal.url}/card/v5/actions/search`, {
    method: 'POST',
    headers: {
      Authorization: `Virgil ${generator.generateToken(identity).toString()}`,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify({ identities: [identity] }),
  });
  assert.equal(response.status, 200);
  return response.json();
}

test('Cardinal answers the page origin\'s CORS preflight and not another origin\'s', async (t) => {
  const preflight = (origin) => fetch(`${cardinal.url}/card/v5/actions/search`, {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization,content-type,virgil-agent',
    },
  });
  const allowed = await preflight(pageServer.origin);
  t.diagnostic(`allowed preflight: ${allowed.status} ${JSON.stringify(Object.fromEntries(allowed.headers))}`);
  assert.ok(allowed.ok, `preflight status ${allowed.status}`);
  assert.equal(allowed.headers.get('access-control-allow-origin'), pageServer.origin);
  const allowedHeaders = (allowed.headers.get('access-control-allow-headers') || '').toLowerCase();
  for (const name of ['authorization', 'content-type', 'virgil-agent']) assert.match(allowedHeaders, new RegExp(name));
  assert.match(allowed.headers.get('access-control-allow-methods') || '', /POST/);

  const refused = await preflight(refusedServer.origin);
  t.diagnostic(`refused preflight: ${refused.status} ${JSON.stringify(Object.fromEntries(refused.headers))}`);
  assert.equal(refused.headers.get('access-control-allow-origin'), null);

  const simple = await fetch(`${cardinal.url}/v1/service-key`, { headers: { Origin: pageServer.origin } });
  assert.equal(simple.headers.get('access-control-allow-origin'), pageServer.origin);
  assert.match((simple.headers.get('access-control-expose-headers') || '').toLowerCase(), /x-virgil-is-superseeded/);
});

for (const [line, version] of Object.entries(LINES)) {
  describe(`@virgilsecurity/e3kit-browser ${version}`, () => {
    const id = (name) => `${name}-e3kit-${line}`;

    test('a private key backed up with a password on one device restores on a fresh one, which reads the old messages', async () => {
      await withDevices([id('backup-ann'), id('backup-ben')], line, async (ann, ben) => {
        await ann.ok('register');
        await ben.ok('register');
        await ann.ok('findUser', ben.identity);
        await ben.ok('findUser', ann.identity);
        const sealed = await ben.ok('authEncrypt', 'for your second device', ann.identity);
        await ann.ok('backupPrivateKey', 'correct horse battery staple');
        // A second device: its own context, so its own (empty) key storage.
        await withDevices([ann.identity], line, async (second) => {
          assert.equal(await second.ok('hasLocalPrivateKey'), false);
          const wrong = await second.fails('restorePrivateKey', 'not the password');
          assert.match(wrong.text, /password|WrongKeyknoxPassword/i);
          await second.ok('restorePrivateKey', 'correct horse battery staple');
          assert.equal(await second.ok('hasLocalPrivateKey'), true);
          await second.ok('findUser', ben.identity);
          assert.equal(await second.ok('authDecrypt', sealed, ben.identity), 'for your second device');
          second.assertClean([/status of 400/]);
        });
        ann.assertClean();
      });
    });

    test('alice and bob register, find each other and exchange signed, encrypted messages both ways, through alice\'s key rotation', async (t) => {
      await withDevices([id('alice'), id('bob')], line, async (alice, bob) => {
        await alice.ok('register');
        await bob.ok('register');

        const bobCard = await alice.ok('findUser', bob.identity);
        const aliceCard = await bob.ok('findUser', alice.identity);
        assert.equal(bobCard.identity, bob.identity);
        assert.equal(aliceCard.identity, alice.identity);
        const both = await alice.ok('findUsers', [alice.identity, bob.identity]);
        assert.deepEqual(Object.keys(both).sort(), [alice.identity, bob.identity].sort());
        assert.equal(both[bob.identity].id, bobCard.id);

        // Signed then encrypted, both ways, with both of e3kit's APIs.
        const hello = await alice.ok('authEncrypt', 'hello bob', bob.identity);
        assert.ok(!hello.includes('hello bob'));
        assert.equal(await bob.ok('authDecrypt', hello, alice.identity), 'hello bob');
        const hi = await bob.ok('authEncrypt', 'hi alice', alice.identity);
        assert.equal(await alice.ok('authDecrypt', hi, bob.identity), 'hi alice');
        const plain = await alice.ok('encrypt', 'encrypt and sign', bob.identity);
        assert.equal(await bob.ok('decrypt', plain, alice.identity), 'encrypt and sign');
        const back = await bob.ok('encrypt', 'and back', alice.identity);
        assert.equal(await alice.ok('decrypt', back, bob.identity), 'and back');
        // The signature is checked: bob cannot pass alice's message off as his own.
        await bob.fails('authDecrypt', hello, bob.identity);

        // Alice loses her key and rotates (e3kit requires no local key first).
        await alice.ok('cleanup');
        assert.equal(await alice.ok('hasLocalPrivateKey'), false);
        await alice.ok('rotatePrivateKey');
        assert.equal(await alice.ok('hasLocalPrivateKey'), true);
        const rotated = await bob.ok('findUser', alice.identity);
        assert.notEqual(rotated.id, aliceCard.id);
        assert.equal(rotated.previousCardId, aliceCard.id);

        const after = await alice.ok('authEncrypt', 'new key, same alice', bob.identity);
        assert.equal(await bob.ok('authDecrypt', after, alice.identity), 'new key, same alice');
        const reply = await bob.ok('authEncrypt', 'got it', alice.identity);
        assert.equal(await alice.ok('authDecrypt', reply, bob.identity), 'got it');

        for (const device of [alice, bob]) {
          device.assertClean();
          const toCardinal = device.record.requests.filter((r) => r.includes(` ${cardinal.url}/`));
          assert.ok(toCardinal.every((r) => r.includes(` ${cardinal.url}/card/v5`)), toCardinal.join('\n'));
          assert.ok(toCardinal.includes(`POST ${cardinal.url}/card/v5`));
          // Every call is preflighted (Authorization, JSON), and each preflight is cached
          // (cors.max_age_secs): at most one per URL in a browser context.
          const preflights = toCardinal.filter((r) => r.startsWith('OPTIONS '));
          assert.ok(preflights.length > 0);
          assert.equal(new Set(preflights).size, preflights.length, preflights.join('\n'));
          assert.match(device.record.agent, new RegExp(`^e3kit;js;.+;${version.replace(/\./g, '\\.')}$`));
        }
        t.diagnostic(`Virgil-Agent: ${alice.record.agent}; calls to Cardinal: ${alice.record.requests.filter((r) => r.includes(cardinal.url)).length}`);
      });
    });

    test('findUsers of an unknown identity gives e3kit\'s UsersNotFoundError', async () => {
      await withDevices([id('carol')], line, async (carol) => {
        const error = await carol.fails('findUser', `nobody-${line}-here`);
        assert.equal(error.name, 'UsersNotFoundError', error.text);
        assert.equal(error.sdkError, true);
        const mixed = await carol.fails('findUsers', [`nobody-${line}-here`, id('alice')]);
        assert.equal(mixed.name, 'UsersNotFoundError', mixed.text);
        carol.assertClean();
      });
    });

    test('a card verifier pinned to Cardinal\'s service key accepts its cards; one pinned to another key makes findUsers fail', async (t) => {
      const impostor = virgilCrypto.exportPublicKey(virgilCrypto.generateKeys().publicKey).toString('base64');
      await withDevices([id('dave'), id('erin')], line, async (dave, erin) => {
        await dave.ok('pinServiceKey', cardinal.serviceKey);
        await dave.ok('register'); // the published card comes back countersigned and verified
        assert.equal((await dave.ok('findUser', dave.identity)).identity, dave.identity);

        await erin.ok('pinServiceKey', impostor);
        const error = await erin.fails('findUser', dave.identity);
        t.diagnostic(`findUsers with a verifier pinned to another key: ${error.text} (${error.name})`);
        assert.match(error.name, /CardVerificationError/, error.text);
        await erin.ok('pinServiceKey', cardinal.serviceKey);
        assert.equal((await erin.ok('findUser', dave.identity)).identity, dave.identity);
        dave.assertClean();
        erin.assertClean();
      });
    });

    test('a page from an origin Cardinal does not allow gets a network error from e3kit', async (t) => {
      await withDevices([id('mallory')], line, async (mallory) => {
        // initialize makes no request to Cardinal; register's first search is blocked by CORS.
        const error = await mallory.fails('register');
        t.diagnostic(`register from a refused origin: ${JSON.stringify(error)}`);
        assert.equal(error.name, 'TypeError');
        assert.equal(error.message, 'Network request failed');
        const lookup = await mallory.fails('findUser', id('alice'));
        assert.equal(lookup.text, 'TypeError: Network request failed');
        t.diagnostic(`console: ${JSON.stringify(mallory.record.consoleErrors)}`);
        assert.ok(mallory.record.consoleErrors.some((text) => CORS_CONSOLE[0].test(text)));
        mallory.assertClean(CORS_CONSOLE);
        assert.deepEqual(await searchFromNode(mallory.identity), [], 'nothing was published');
      }, refusedServer.origin);
    });
  });
}
