// An expired token: Cardinal answers 401 with code 20304, and the SDK retries once with a
// fresh token, which succeeds.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { setTimeout: sleep } = require('node:timers/promises');
const { initCrypto, VirgilCrypto, VirgilCardCrypto, VirgilAccessTokenSigner } = require('virgil-crypto');
const { CardManager, CallbackJwtProvider, JwtGenerator } = require('virgil-sdk');
const { startCardinal } = require('./harness');

let server, virgilCrypto, signer, apiKey;

before(async () => {
  server = await startCardinal();
  await initCrypto();
  virgilCrypto = new VirgilCrypto();
  signer = new VirgilAccessTokenSigner(virgilCrypto);
  apiKey = virgilCrypto.importPrivateKey(server.apiKeyDer);
});

after(async () => server && server.stop());

function generator(millisecondsToLive) {
  return new JwtGenerator({ appId: server.appId, apiKeyId: server.kid, apiKey, accessTokenSigner: signer, millisecondsToLive });
}

async function expiredToken(identity) {
  const token = generator(1000).generateToken(identity).toString();
  await sleep(2100);
  return token;
}

test('an expired token gets 401 with code 20304', async () => {
  const token = await expiredToken('dave');
  const response = await fetch(`${server.url}/card/v5/actions/search`, {
    method: 'POST',
    headers: { Authorization: `Virgil ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ identities: ['dave'] }),
  });
  assert.equal(response.status, 401);
  assert.equal((await response.json()).code, 20304);
});

test('the SDK retries with a fresh token and succeeds', async () => {
  const reloads = [];
  const provider = new CallbackJwtProvider(async (context) => {
    reloads.push(Boolean(context.forceReload));
    return context.forceReload
      ? generator(10 * 60 * 1000).generateToken('erin').toString()
      : expiredToken('erin');
  });
  const manager = new CardManager({
    cardCrypto: new VirgilCardCrypto(virgilCrypto),
    apiUrl: server.url,
    retryOnUnauthorized: true,
    accessTokenProvider: provider,
  });
  const keys = virgilCrypto.generateKeys();
  const card = await manager.publishCard({ privateKey: keys.privateKey, publicKey: keys.publicKey });
  assert.equal(card.identity, 'erin');
  assert.deepEqual(reloads, [false, true], 'one expired attempt, then one forced reload');
});
