// Starts a fresh Cardinal for the browser suite exactly as tests/interop/harness.js does (its
// own temp dir, SQLite, `cardinal app create`, `cardinal key generate --role app`, `serve` on
// port 0), with CORS restricted to the given page origins.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const BIN = process.env.CARDINAL_BIN || path.resolve(__dirname, '../../target/debug/cardinal');

async function startCardinal({ allowedOrigins }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cardinal-browser-'));
  const env = { PATH: process.env.PATH, HOME: process.env.HOME };
  env.DATABASE_URL = `sqlite://${dir}/cardinal.db`;
  env.CARDINAL_SERVER__LISTEN = '127.0.0.1:0';
  env.CARDINAL_BOOTSTRAP__ENABLED = 'false';
  env.CARDINAL_SERVICE__SIGNING_KEY_FILE = path.join(dir, 'service-key.pem');
  env.CARDINAL_CORS__ALLOWED_ORIGINS = JSON.stringify(allowedOrigins);

  const appId = `browser-${crypto.randomBytes(4).toString('hex')}`;
  const kid = `${appId}-key`;
  const keyFile = path.join(dir, 'api-key.pem');
  execFileSync(BIN, ['app', 'create', appId], { env, cwd: dir, stdio: 'pipe' });
  execFileSync(BIN, ['key', 'generate', '--app', appId, '--role', 'app', '--out', keyFile, '--kid', kid], {
    env, cwd: dir, stdio: 'pipe',
  });
  const pem = fs.readFileSync(keyFile, 'utf8');
  const apiKeyDer = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');

  const child = spawn(BIN, ['serve'], { env, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  // Never leave Cardinal behind, even when the test process dies.
  const reap = () => child.exitCode === null && child.kill('SIGKILL');
  process.once('exit', reap);
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
    url, appId, kid, apiKeyDer, serviceKey, dir, log, env, bin: BIN, keyFile,
    stop: async () => {
      if (child.exitCode === null) {
        await new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM'); });
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startCardinal };
