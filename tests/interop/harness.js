// Starts a fresh Cardinal for one test file: its own app and API key (made with the
// `cardinal` CLI, as an operator would), on SQLite by default or on the PostgreSQL database
// named by CARDINAL_INTEROP_DATABASE_URL.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const BIN = process.env.CARDINAL_BIN || path.resolve(__dirname, '../../target/debug/cardinal');

async function startCardinal() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cardinal-interop-'));
  const env = { PATH: process.env.PATH, HOME: process.env.HOME };
  env.DATABASE_URL = process.env.CARDINAL_INTEROP_DATABASE_URL || `sqlite://${dir}/cardinal.db`;
  env.CARDINAL_SERVER__LISTEN = '127.0.0.1:0';
  env.CARDINAL_BOOTSTRAP__ENABLED = 'false';
  env.CARDINAL_SERVICE__SIGNING_KEY_FILE = path.join(dir, 'service-key.pem');
  // No skew, so that the token-expiry test does not have to wait a minute.
  env.CARDINAL_AUTH__CLOCK_SKEW_SECS = '0';

  // Another app and its app-role key, made with the CLI as an operator would.
  const addApp = () => {
    const appId = `interop-${crypto.randomBytes(4).toString('hex')}`;
    const kid = `${appId}-key`;
    const keyFile = path.join(dir, `${appId}.pem`);
    execFileSync(BIN, ['app', 'create', appId], { env, cwd: dir, stdio: 'pipe' });
    execFileSync(BIN, ['key', 'generate', '--app', appId, '--role', 'app', '--out', keyFile, '--kid', kid], {
      env, cwd: dir, stdio: 'pipe',
    });
    const pem = fs.readFileSync(keyFile, 'utf8');
    return { appId, kid, apiKeyDer: Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64') };
  };
  const { appId, kid, apiKeyDer } = addApp();

  const child = spawn(BIN, ['serve'], { env, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const log = [];
  const port = await new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stderr });
    const timer = setTimeout(() => reject(new Error(`cardinal did not start:\n${log.join('\n')}`)), 60000);
    lines.on('line', (line) => {
      log.push(line);
      const match = /listening port=(\d+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.on('exit', (code) => reject(new Error(`cardinal exited with ${code}:\n${log.join('\n')}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const serviceKey = (await (await fetch(`${url}/v1/service-key`)).json()).public_key;
  return {
    url, appId, kid, apiKeyDer, serviceKey, dir, log, addApp,
    stop: () => new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM'); }),
  };
}

module.exports = { startCardinal };
