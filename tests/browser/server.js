// The test page's own web server: the page and its bundles (page/, dist/) and, beside them on
// the same origin, the app backend's token endpoint that mints Virgil JWTs the way the
// tutorials' backends do (virgil-sdk's JwtGenerator with virgil-crypto and the app's API key).
'use strict';
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm' };
const ROOTS = { '/dist/': path.join(__dirname, 'dist'), '/': path.join(__dirname, 'page') };

// mint(identity) returns a JWT string; it may be set after the server is listening (Cardinal
// needs the page's origin before it starts, the token endpoint needs Cardinal's app key).
function startPageServer() {
  const state = { mint: null, tokens: 0 };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://page');
    if (req.method === 'GET' && url.pathname === '/virgil-jwt') {
      const identity = url.searchParams.get('identity');
      if (!identity || !state.mint) {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"no identity"}');
        return;
      }
      state.tokens += 1;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ virgil_jwt: state.mint(identity) }));
      return;
    }
    const pathname = url.pathname === '/' ? '/index.html' : url.pathname;
    const prefix = pathname.startsWith('/dist/') ? '/dist/' : '/';
    const file = path.join(ROOTS[prefix], pathname.slice(prefix.length));
    if (req.method !== 'GET' || !file.startsWith(ROOTS[prefix] + path.sep) || !fs.existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const origin = `http://127.0.0.1:${server.address().port}`;
      resolve({
        origin,
        state,
        setMint(mint) { state.mint = mint; },
        close: () => new Promise((done) => { server.closeAllConnections(); server.close(done); }),
      });
    });
  });
}

module.exports = { startPageServer };
