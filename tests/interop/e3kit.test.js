// e3kit-node 2.5.1 against Cardinal: register, findUsers, encrypt and authEncrypt, key
// rotation, unregister and register again, and the errors e3kit apps rely on.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { initCrypto, VirgilCrypto, VirgilAccessTokenSigner } = require('virgil-crypto');
const { JwtGenerator } = require('virgil-sdk');
const { startCardinal } = require('./harness');

// e3kit-node 2.5.1 ships virgil-crypto 4, whose WASM loader calls the global fetch() with a
// file path on Node 18+: hide fetch while e3kit initialises (virgil-v5.md §4).
const nodeFetch = globalThis.fetch;
delete globalThis.fetch;
const { EThree, IdentityAlreadyExistsError, UsersNotFoundError } = require('@virgilsecurity/e3kit-node');
globalThis.fetch = nodeFetch;

let server, generator;

before(async () => {
  server = await startCardinal();
  await initCrypto();
  const virgilCrypto = new VirgilCrypto();
  generator = new JwtGenerator({
    appId: server.appId,
    apiKeyId: server.kid,
    apiKey: virgilCrypto.importPrivateKey(server.apiKeyDer),
    accessTokenSigner: new VirgilAccessTokenSigner(virgilCrypto),
  });
});

after(async () => server && server.stop());

async function device(identity, name = identity) {
  delete globalThis.fetch;
  try {
    return await EThree.initialize(async () => generator.generateToken(identity).toString(), {
      apiUrl: server.url,
      storageName: path.join(server.dir, name, 'keys'),
      groupStorageName: path.join(server.dir, name, 'groups'),
    });
  } finally {
    globalThis.fetch = nodeFetch;
  }
}

test('two users register, find each other and exchange messages through a key rotation, an unregister and a new registration', async () => {
  const alice = await device('alice');
  const bob = await device('bob');
  await alice.register();
  await bob.register();

  let bobCard = await alice.findUsers('bob');
  const aliceCard = await bob.findUsers('alice');
  assert.equal(bobCard.identity, 'bob');
  const both = await alice.findUsers(['alice', 'bob']);
  assert.deepEqual(Object.keys(both).sort(), ['alice', 'bob']);

  const sealed = await alice.encrypt('hello bob', bobCard);
  assert.equal(await bob.decrypt(sealed, aliceCard), 'hello bob');
  const authSealed = await alice.authEncrypt('authenticated hello', bobCard);
  assert.equal(await bob.authDecrypt(authSealed, aliceCard), 'authenticated hello');

  // Bob loses his key and rotates: his new card replaces the old one for everybody.
  const oldBobCard = bobCard;
  await bob.cleanup();
  await bob.rotatePrivateKey();
  bobCard = await alice.findUsers('bob');
  assert.notEqual(bobCard.id, oldBobCard.id);
  assert.equal(bobCard.previousCardId, oldBobCard.id);
  const afterRotation = await alice.authEncrypt('still there?', bobCard);
  assert.equal(await bob.authDecrypt(afterRotation, aliceCard), 'still there?');
  const reply = await bob.authEncrypt('yes', aliceCard);
  assert.equal(await alice.authDecrypt(reply, bobCard), 'yes');

  // Unregister revokes the chain; a new registration is a new root card.
  await bob.unregister();
  await assert.rejects(alice.findUsers('bob'), UsersNotFoundError);
  await bob.register();
  const reborn = await alice.findUsers('bob');
  assert.notEqual(reborn.id, bobCard.id);
  assert.equal(reborn.previousCardId, undefined);
  const fresh = await alice.encrypt('welcome back', reborn);
  assert.equal(await bob.decrypt(fresh, aliceCard), 'welcome back');
});

test('registering an identity that is already registered fails the way e3kit expects', async () => {
  const first = await device('carol', 'carol-phone');
  await first.register();
  const second = await device('carol', 'carol-laptop');
  await assert.rejects(second.register(), IdentityAlreadyExistsError);
});

test('findUsers of an unknown identity gives UsersNotFoundError', async () => {
  const dave = await device('dave');
  await assert.rejects(dave.findUsers('nobody-here'), UsersNotFoundError);
  await assert.rejects(dave.findUsers(['nobody-here', 'dave']), UsersNotFoundError);
});
