// e3kit-node 2.5.1 groups against Cardinal's Keyknox v2, and the standalone Keyknox client
// (@virgilsecurity/keyknox 1.0.3, the one e3kit ships) driving v1 and v2 directly.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { initCrypto, VirgilCrypto, VirgilAccessTokenSigner } = require('virgil-crypto');
const { JwtGenerator, GeneratorJwtProvider } = require('virgil-sdk');
const { startCardinal } = require('./harness');

// See e3kit.test.js: virgil-crypto 4's WASM loader must not see the global fetch().
const nodeFetch = globalThis.fetch;
delete globalThis.fetch;
const { EThree, GroupError } = require('@virgilsecurity/e3kit-node');
const { KeyknoxClient, KeyknoxClientError } = require('@virgilsecurity/keyknox');
globalThis.fetch = nodeFetch;

const EMPTY_HASH = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=';
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

async function device(identity) {
  delete globalThis.fetch;
  try {
    const ethree = await EThree.initialize(async () => generator.generateToken(identity).toString(), {
      apiUrl: server.url,
      storageName: path.join(server.dir, identity, 'keys'),
      groupStorageName: path.join(server.dir, identity, 'groups'),
    });
    await ethree.register();
    return ethree;
  } finally {
    globalThis.fetch = nodeFetch;
  }
}

function keyknox(identity) {
  return new KeyknoxClient(new GeneratorJwtProvider(generator, undefined, identity), server.url);
}

test('an e3kit group: create, load, write, remove, add, reAdd and delete', async () => {
  const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map(device));
  const aliceCard = await bob.findUsers('alice');
  const cards = await alice.findUsers(['bob', 'carol', 'dave']);
  const groupId = 'clinic-ward-7';

  // Alice creates the group with Bob and Carol; Bob loads it from her card and reads her message.
  const aliceGroup = await alice.createGroup(groupId, { bob: cards.bob, carol: cards.carol });
  assert.deepEqual([...aliceGroup.participants].sort(), ['alice', 'bob', 'carol']);
  const hello = await aliceGroup.encrypt('hello ward 7');
  const bobGroup = await bob.loadGroup(groupId, aliceCard);
  assert.equal(await bobGroup.decrypt(hello, aliceCard), 'hello ward 7');

  // Carol writes; Alice reads.
  const carolGroup = await carol.loadGroup(groupId, await carol.findUsers('alice'));
  const carolCard = await alice.findUsers('carol');
  const fromCarol = await carolGroup.encrypt('carol here');
  assert.equal(await aliceGroup.decrypt(fromCarol, carolCard), 'carol here');

  // A second createGroup of the same id is refused (Keyknox's 50010).
  await assert.rejects(alice.createGroup(groupId, cards.bob));

  // Alice removes Carol: Carol cannot read what is sent after, nor reload the group.
  await aliceGroup.remove(cards.carol);
  assert.deepEqual([...aliceGroup.participants].sort(), ['alice', 'bob']);
  const afterRemoval = await aliceGroup.encrypt('without carol');
  await bobGroup.update();
  assert.equal(await bobGroup.decrypt(afterRemoval, aliceCard), 'without carol');
  await assert.rejects(carolGroup.decrypt(afterRemoval, aliceCard));
  await assert.rejects(carolGroup.update(), GroupError);
  await assert.rejects(carol.loadGroup(groupId, await carol.findUsers('alice')), GroupError);

  // Alice adds Dave, who reads new messages.
  await aliceGroup.add(cards.dave);
  const withDave = await aliceGroup.encrypt('welcome dave');
  const daveGroup = await dave.loadGroup(groupId, await dave.findUsers('alice'));
  assert.equal(await daveGroup.decrypt(withDave, aliceCard), 'welcome dave');
  // Bob reads with the tickets he holds: e3kit's add re-encrypts the cloud tickets for the
  // initiator and the new members only (a client behaviour, virgil-v5.md §6.7).
  assert.equal(await bobGroup.decrypt(withDave, aliceCard), 'welcome dave');

  // reAdd (Bob's key rotated, say) re-encrypts the tickets for him; he loads and reads again.
  await aliceGroup.reAdd(cards.bob);
  const reloaded = await bob.loadGroup(groupId, aliceCard);
  const afterReAdd = await aliceGroup.encrypt('bob again');
  assert.equal(await reloaded.decrypt(afterReAdd, aliceCard), 'bob again');

  // After deleteGroup, loading fails.
  await alice.deleteGroup(groupId);
  await assert.rejects(bob.loadGroup(groupId, aliceCard), GroupError);
  await assert.rejects(dave.loadGroup(groupId, await dave.findUsers('alice')), GroupError);
});

test('a group of 100 members is created and loaded', async () => {
  const owner = await device('owner-100');
  const members = [];
  for (let n = 0; n < 99; n += 1) members.push(`member-${n}`);
  // Cards only: the members need no group storage to be added.
  const devices = await Promise.all(members.slice(0, 2).map(device));
  const { CardManager, VirgilCardVerifier } = require('virgil-sdk');
  const { VirgilCardCrypto } = require('virgil-crypto');
  const crypto = new VirgilCrypto();
  const cardCrypto = new VirgilCardCrypto(crypto);
  await Promise.all(members.slice(2).map(async (identity) => {
    const manager = new CardManager({
      cardCrypto, apiUrl: server.url,
      accessTokenProvider: new GeneratorJwtProvider(generator, undefined, identity),
      cardVerifier: new VirgilCardVerifier(cardCrypto, { verifySelfSignature: false, verifyVirgilSignature: false }),
    });
    const keys = crypto.generateKeys();
    await manager.publishCard({ privateKey: keys.privateKey, publicKey: keys.publicKey });
  }));
  const cards = await owner.findUsers(members);
  const group = await owner.createGroup('big-group-of-100', cards);
  assert.equal(group.participants.length, 100);
  const ownerCard = await devices[1].findUsers('owner-100');
  const loaded = await devices[1].loadGroup('big-group-of-100', ownerCard);
  assert.equal(await loaded.decrypt(await group.encrypt('to all'), ownerCard), 'to all');
});

test('Keyknox v1 through the official client: the hash protocol and its conflict', async () => {
  const client = keyknox('v1-user');
  const empty = await client.v1Pull();
  assert.equal(empty.meta, '');
  assert.equal(empty.keyknoxHash, EMPTY_HASH);
  const first = await client.v1Push('bWV0YQ==', 'dmFsdWU=', empty.keyknoxHash);
  assert.equal(first.version, '1.0');
  const conflict = await client.v1Push('bWV0YTI=', 'dmFsdWUy', empty.keyknoxHash).catch((e) => e);
  assert.ok(conflict instanceof KeyknoxClientError, String(conflict));
  assert.equal(conflict.status, 409);
  assert.equal(conflict.code, 50017);
  const second = await client.v1Push('bWV0YTI=', 'dmFsdWUy', first.keyknoxHash);
  assert.equal(second.version, '2.0');
  const reset = await client.v1Reset();
  assert.equal(reset.version, '3.0');
  assert.equal((await client.v1Pull()).value, '');
});

test('Keyknox v2 through the official client: readers, a non-reader refused, limits', async () => {
  const owner = keyknox('kk-owner');
  const entry = { root: 'e3kit', path: 'backup', key: 'phone' };
  const missing = await owner.v2Pull(entry);
  assert.equal(missing.value, '');
  const pushed = await owner.v2Push({ ...entry, identities: ['kk-reader'], meta: 'bQ==', value: 'dg==', keyknoxHash: missing.keyknoxHash });
  assert.deepEqual(pushed.identities, ['kk-owner', 'kk-reader']);
  const exists = await owner.v2Push({ ...entry, identities: [], meta: 'bQ==', value: 'dg==' }).catch((e) => e);
  assert.equal(exists.code, 50010);

  const read = await keyknox('kk-reader').v2Pull({ ...entry, identity: 'kk-owner' });
  assert.equal(read.value, 'dg==');
  assert.deepEqual(await keyknox('kk-reader').v2GetKeys({ root: 'e3kit', path: 'backup', identity: 'kk-owner' }), ['phone']);
  const denied = await keyknox('kk-stranger').v2Pull({ ...entry, identity: 'kk-owner' }).catch((e) => e);
  assert.ok(denied instanceof KeyknoxClientError, String(denied));
  assert.equal(denied.status, 403);
  assert.equal(denied.code, 50045);
  assert.deepEqual(await keyknox('kk-stranger').v2GetKeys({ root: 'e3kit', path: 'backup', identity: 'kk-owner' }), []);

  const huge = 'A'.repeat(200000);
  const tooLarge = await owner.v2Push({ ...entry, key: 'big', identities: [], meta: huge, value: 'dg==' }).catch((e) => e);
  assert.equal(tooLarge.status, 413);
  assert.equal(tooLarge.code, 50040);

  const reset = await owner.v2Reset({ ...entry, identity: 'kk-reader' });
  assert.equal(reset.owner, 'kk-owner');
  assert.deepEqual(reset.identities, ['kk-owner']);
  const gone = await keyknox('kk-reader').v2Pull({ ...entry, identity: 'kk-owner' }).catch((e) => e);
  assert.equal(gone.code, 50045);

  // An unknown Keyknox route keeps its code in the client's error.
  const notFound = await require('axios').post(`${server.url}/keyknox/v9/push`, {}, {
    headers: { Authorization: `Virgil ${generator.generateToken('kk-owner').toString()}` },
  }).catch((e) => e.response);
  assert.equal(notFound.status, 404);
  assert.equal(notFound.data.code, 10001);
  assert.ok(notFound.data.message);
});
