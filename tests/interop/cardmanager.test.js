// virgil-sdk's CardManager, with a VEDS512 JwtGenerator and a VirgilCardVerifier that trusts
// Cardinal's service key instead of Virgil's.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { initCrypto, VirgilCrypto, VirgilCardCrypto, VirgilAccessTokenSigner } = require('virgil-crypto');
const { CardManager, VirgilCardVerifier, JwtGenerator, GeneratorJwtProvider } = require('virgil-sdk');
const { startCardinal } = require('./harness');

let server, virgilCrypto, cardCrypto, generator;

before(async () => {
  server = await startCardinal();
  await initCrypto();
  virgilCrypto = new VirgilCrypto();
  cardCrypto = new VirgilCardCrypto(virgilCrypto);
  generator = new JwtGenerator({
    appId: server.appId,
    apiKeyId: server.kid,
    apiKey: virgilCrypto.importPrivateKey(server.apiKeyDer),
    accessTokenSigner: new VirgilAccessTokenSigner(virgilCrypto),
  });
});

after(async () => server && server.stop());

function cardManager(identity, serviceKey = server.serviceKey) {
  return new CardManager({
    cardCrypto,
    apiUrl: server.url,
    retryOnUnauthorized: true,
    accessTokenProvider: new GeneratorJwtProvider(generator, undefined, identity),
    cardVerifier: new VirgilCardVerifier(cardCrypto, {
      verifySelfSignature: true,
      verifyVirgilSignature: false,
      whitelists: [[{ signer: 'virgil', publicKeyBase64: serviceKey }]],
    }),
  });
}

test('publish, get, search, rotate and revoke through CardManager', async () => {
  const manager = cardManager('alice');
  const first = virgilCrypto.generateKeys();
  const card = await manager.publishCard({ privateKey: first.privateKey, publicKey: first.publicKey });
  assert.equal(card.identity, 'alice');
  assert.equal(card.isOutdated, false);

  const fetched = await manager.getCard(card.id);
  assert.equal(fetched.id, card.id);
  assert.equal(fetched.isOutdated, false);
  const found = await manager.searchCards('alice');
  assert.deepEqual(found.map((c) => c.id), [card.id]);

  const second = virgilCrypto.generateKeys();
  const rotated = await manager.publishCard({
    privateKey: second.privateKey, publicKey: second.publicKey, previousCardId: card.id,
  });
  assert.equal(rotated.previousCardId, card.id);
  const folded = await manager.searchCards(['alice', 'nobody']);
  assert.equal(folded.length, 1, 'the SDK folds the rotation chain into its newest card');
  assert.equal(folded[0].id, rotated.id);
  assert.equal(folded[0].previousCard.id, card.id);
  assert.equal(folded[0].previousCard.isOutdated, true);
  assert.equal((await manager.getCard(card.id)).isOutdated, true, 'the old card says superseded');

  await manager.revokeCard(rotated.id);
  assert.deepEqual(await manager.searchCards('alice'), [], 'the whole chain is gone from search');
  assert.equal((await manager.getCard(rotated.id)).isOutdated, true);

  const again = virgilCrypto.generateKeys();
  const reborn = await manager.publishCard({ privateKey: again.privateKey, publicKey: again.publicKey });
  assert.deepEqual((await manager.searchCards('alice')).map((c) => c.id), [reborn.id]);
});

test('a verifier pinned to another service key rejects Cardinal\'s cards', async () => {
  const impostorKey = virgilCrypto.exportPublicKey(virgilCrypto.generateKeys().publicKey).toString('base64');
  const honest = cardManager('bob');
  const suspicious = cardManager('bob', impostorKey);
  const keys = virgilCrypto.generateKeys();
  await assert.rejects(
    suspicious.publishCard({ privateKey: keys.privateKey, publicKey: keys.publicKey }),
    (error) => error.name === 'CardVerificationError',
  );
  const cards = await honest.searchCards('bob');
  assert.equal(cards.length, 1, 'the card was published; only the suspicious client refuses it');
  await assert.rejects(suspicious.searchCards('bob'), (error) => error.name === 'CardVerificationError');
  await assert.rejects(suspicious.getCard(cards[0].id), (error) => error.name === 'CardVerificationError');
});

test('Cardinal\'s errors reach the SDK as VirgilHttpError with Virgil codes', async () => {
  const manager = cardManager('carol');
  const keys = virgilCrypto.generateKeys();
  const card = await manager.publishCard({ privateKey: keys.privateKey, publicKey: keys.publicKey });
  await assert.rejects(
    manager.publishCard({ privateKey: keys.privateKey, publicKey: keys.publicKey, previousCardId: 'ab'.repeat(32) }),
    (error) => error.name === 'VirgilHttpError' && error.httpStatus === 400 && error.errorCode === 40015,
  );
  await assert.rejects(
    cardManager('mallory').revokeCard(card.id),
    (error) => error.name === 'VirgilHttpError' && error.httpStatus === 403,
  );
});
