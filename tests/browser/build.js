// Bundles page/app.js with esbuild, once per e3kit line, into dist/e3kit-<line>/ (the WASM
// files beside the script, referred to by the absolute public path the page serves them at).
'use strict';
const esbuild = require('esbuild');
const path = require('node:path');

const lines = {
  '2.5': { alias: { e3kit: '@virgilsecurity/e3kit-browser' } },
  // 3.0.5 expects the bundler to provide Node's globals: it reads bare `global` and `Buffer`
  // as it loads, and its inlined level code (group storage) calls `process.nextTick`.
  '3.0': {
    alias: { e3kit: 'e3kit-browser-3' },
    define: { global: 'globalThis' },
    inject: [path.join(__dirname, 'page', 'node-shims.js')],
  },
};

async function build() {
  for (const [line, options] of Object.entries(lines)) {
    await esbuild.build({
      entryPoints: [path.join(__dirname, 'page', 'app.js')],
      outdir: path.join(__dirname, 'dist', `e3kit-${line}`),
      publicPath: `/dist/e3kit-${line}`,
      bundle: true,
      format: 'iife',
      platform: 'browser',
      target: 'es2020',
      loader: { '.wasm': 'file' },
      logLevel: 'warning',
      ...options,
    });
  }
}

build().catch(() => process.exit(1));
