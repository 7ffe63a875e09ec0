// Injected into the e3kit 3.0 bundle: the Node globals its dependencies expect a bundler to
// supply (webpack 4 did so by default).
import { Buffer } from 'buffer';

export { Buffer };
export const process = { env: {}, browser: true, version: '', versions: {}, nextTick: (fn, ...args) => queueMicrotask(() => fn(...args)) };
