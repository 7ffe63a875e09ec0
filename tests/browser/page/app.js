// The test page's script, bundled by build.js once per e3kit line: `e3kit` is an alias for
// @virgilsecurity/e3kit-browser 2.5.5 or 3.0.5. It does what an app does (EThree.initialize with
// a getToken that asks the page's own backend, then register, findUsers, encrypt, rotate) and
// exposes each step on window.cardinal for the test to drive; errors come back as data.
import { EThree, SdkError } from 'e3kit';
import { VirgilCardVerifier } from 'virgil-sdk';

let ethree = null;
const cards = {}; // identity -> the card from this device's last findUsers

// The tutorials' getToken: the app's backend mints a Virgil JWT for the signed-in user.
const tokenFetcher = (identity) => async () => {
  const response = await fetch(`/virgil-jwt?identity=${encodeURIComponent(identity)}`);
  if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
  return (await response.json()).virgil_jwt;
};

const summary = (card) => ({ id: card.id, identity: card.identity, previousCardId: card.previousCardId || null });

const steps = {
  async initialize(identity, apiUrl) {
    ethree = await EThree.initialize(tokenFetcher(identity), { apiUrl });
    return ethree.identity;
  },
  register: () => ethree.register(),
  async findUser(identity) {
    cards[identity] = await ethree.findUsers(identity);
    return summary(cards[identity]);
  },
  async findUsers(identities) {
    const found = await ethree.findUsers(identities);
    Object.assign(cards, found);
    return Object.fromEntries(Object.entries(found).map(([id, card]) => [id, summary(card)]));
  },
  encrypt: (text, identity) => ethree.encrypt(text, cards[identity]),
  decrypt: (sealed, identity) => ethree.decrypt(sealed, cards[identity]),
  authEncrypt: (text, identity) => ethree.authEncrypt(text, cards[identity]),
  authDecrypt: (sealed, identity) => ethree.authDecrypt(sealed, cards[identity]),
  cleanup: () => ethree.cleanup(),
  rotatePrivateKey: () => ethree.rotatePrivateKey(),
  hasLocalPrivateKey: () => ethree.hasLocalPrivateKey(),
  // Password backups: Pythia derives the key, Keyknox keeps the encrypted private key.
  backupPrivateKey: (password) => ethree.backupPrivateKey(password),
  restorePrivateKey: (password) => ethree.restorePrivateKey(password),
  changePassword: (oldPassword, newPassword) => ethree.changePassword(oldPassword, newPassword),
  // The README's recipe: e3kit turns card checks off for any apiUrl but Virgil's, so put a
  // verifier back that trusts Cardinal's service key (GET /v1/service-key → public_key).
  pinServiceKey(publicKeyBase64) {
    ethree.cardManager.cardVerifier = new VirgilCardVerifier(ethree.cardManager.crypto, {
      verifySelfSignature: true,
      verifyVirgilSignature: false,
      whitelists: [[{ signer: 'virgil', publicKeyBase64 }]],
    });
  },
};

window.cardinal = {
  async run(step, ...args) {
    try {
      const value = await steps[step](...args);
      return { value: value === undefined ? null : value };
    } catch (error) {
      return {
        error: {
          name: error && error.name,
          message: error && error.message,
          text: String(error),
          constructor: error && error.constructor && error.constructor.name,
          sdkError: error instanceof SdkError,
        },
      };
    }
  },
};
