// The official @virgilsecurity/pythia-crypto 1.1.3 (the one e3kit-node 2.5.1 pins) against
// Cardinal's POST /pythia/v1/brainkey: two blindings of one password deblind to one value;
// another password, identity or app deblinds to another. Then the official virgil-pythia
// BrainKey client, as e3kit drives it, derives one key pair from one password.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { initCrypto, VirgilCrypto, VirgilAccessTokenSigner } = require('virgil-crypto');
const { JwtGenerator, GeneratorJwtProvider } = require('virgil-sdk');
const { startCardinal } = require('./harness');

// pythia-crypto's WASM loader, like virgil-crypto 4's, calls the global fetch() with a file
// path on Node 18+: hide fetch while it initialises (virgil-v5.md §4).
const nodeFetch = globalThis.fetch;
let pythiaCrypto;

let server, virgilCrypto, brainKeyCrypto;
const generators = {};

function generatorFor(app) {
  return new JwtGenerator({
    appId: app.appId,
    apiKeyId: app.kid,
    apiKey: virgilCrypto.importPrivateKey(app.apiKeyDer),
    accessTokenSigner: new VirgilAccessTokenSigner(virgilCrypto),
  });
}

before(async () => {
  server = await startCardinal();
  await initCrypto();
  virgilCrypto = new VirgilCrypto();
  delete globalThis.fetch;
  try {
    pythiaCrypto = require('@virgilsecurity/pythia-crypto');
    await pythiaCrypto.initPythia();
  } finally {
    globalThis.fetch = nodeFetch;
  }
  brainKeyCrypto = new pythiaCrypto.VirgilBrainKeyCrypto();
  generators.main = generatorFor(server);
  generators.other = generatorFor(server.addApp());
});

after(async () => server && server.stop());

async function brainkey(app, identity, blindedPassword, brainkeyId) {
  const token = generators[app].generateToken(identity).toString();
  const body = { blinded_password: blindedPassword.toString('base64') };
  if (brainkeyId !== undefined) body.brainkey_id = brainkeyId;
  const response = await fetch(`${server.url}/pythia/v1/brainkey`, {
    method: 'POST',
    headers: { Authorization: `Virgil ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  assert.equal(response.status, 200, JSON.stringify(answer));
  return Buffer.from(answer.seed, 'base64');
}

async function deblinded(app, identity, password, brainkeyId) {
  const { blindedPassword, blindingSecret } = brainKeyCrypto.blind(password);
  const seed = await brainkey(app, identity, blindedPassword, brainkeyId);
  assert.equal(seed.length, 384);
  return { blindedPassword, seed, value: brainKeyCrypto.deblind({ transformedPassword: seed, blindingSecret }) };
}

test('two blindings of one password deblind to one value; another password, identity, app or brainkey id to another', async () => {
  const first = await deblinded('main', 'alice', 'correct horse battery staple');
  const second = await deblinded('main', 'alice', 'correct horse battery staple');
  assert.notDeepEqual(first.blindedPassword, second.blindedPassword, 'the blindings differ');
  assert.notDeepEqual(first.seed, second.seed, 'so do the seeds');
  assert.deepEqual(first.value, second.value, 'the deblinded values are equal');
  assert.equal(first.value.length, 384);

  const others = [
    await deblinded('main', 'alice', 'correct horse battery stapler'),
    await deblinded('main', 'bob', 'correct horse battery staple'),
    await deblinded('other', 'alice', 'correct horse battery staple'),
    await deblinded('main', 'alice', 'correct horse battery staple', 'work'),
  ];
  for (const other of others) assert.notDeepEqual(other.value, first.value);
  const unicode = await deblinded('main', 'alice', 'pässwörd ✓');
  assert.deepEqual((await deblinded('main', 'alice', 'pässwörd ✓')).value, unicode.value);
});

test('the official BrainKey client derives the same key pair from one password, and another from another', async () => {
  const { createBrainKey } = require('virgil-pythia');
  const brainKey = createBrainKey({
    virgilCrypto,
    virgilBrainKeyCrypto: brainKeyCrypto,
    accessTokenProvider: new GeneratorJwtProvider(generators.main, undefined, 'carol'),
    apiUrl: server.url,
  });
  const exported = async (password, id) =>
    virgilCrypto.exportPublicKey((await brainKey.generateKeyPair(password, id)).publicKey).toString('base64');
  const once = await exported('hunter2');
  assert.equal(await exported('hunter2'), once);
  assert.notEqual(await exported('hunter3'), once);
  assert.notEqual(await exported('hunter2', 'named'), once);
});

test('a malformed blinded password gets a 400 with a stable Virgil code', async () => {
  const token = generators.main.generateToken('dave').toString();
  const response = await fetch(`${server.url}/pythia/v1/brainkey`, {
    method: 'POST',
    headers: { Authorization: `Virgil ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ blinded_password: Buffer.alloc(49).toString('base64') }),
  });
  assert.equal(response.status, 400);
  assert.equal((await response.json()).code, 60102);
});
