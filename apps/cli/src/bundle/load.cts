// Loads the bundled CLI: dist/kvfabric.cjs (one CommonJS file holding the CLI, the client, grpc-js and protobuf,
// written by scripts/bundle.mjs) compiled with the V8 code cache written next to it at build time. A cold
// `kvfabric nodes` then reads two files instead of resolving some hundred modules, and V8 takes the bytecode of
// every function the build's training run executed instead of parsing and compiling it again.
// A cache V8 rejects (another Node.js version or V8 flags than at build time) costs only speed: the script compiles
// from source as usual.
// CommonJS, like the bin that requires it: Node.js starts a CommonJS entry a few milliseconds sooner than an ES module.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import vm from 'node:vm';
import type * as Main from '../main.js';

const DIST = join(__dirname, '..');
export const BUNDLE_FILE = join(DIST, 'kvfabric.cjs');
export const CODE_CACHE_FILE = join(DIST, 'kvfabric.cache');

export interface LoadedCli {
  exports: typeof Main;
  /** The compiled bundle; `createCachedData()` after a run is how the build writes the cache. */
  script: vm.Script;
  /** False when there was no cache or V8 refused it. */
  cacheAccepted: boolean;
}

/** `useCache: false` compiles from source (the build's training run, which writes the cache). */
export function loadCli(options: { useCache?: boolean } = {}): LoadedCli {
  let source: string;
  try {
    source = readFileSync(BUNDLE_FILE, 'utf8');
  } catch (err) {
    throw new Error(
      `kvfabric: cannot read ${BUNDLE_FILE} (${(err as NodeJS.ErrnoException).code}); run \`npm run build\``,
      { cause: err },
    );
  }
  const cachedData = options.useCache === false ? undefined : readOptional(CODE_CACHE_FILE);
  const wrapper = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new vm.Script(wrapper, { filename: BUNDLE_FILE, cachedData });
  const module = { exports: {} as typeof Main };
  (script.runInThisContext() as (...args: unknown[]) => void).call(
    module.exports,
    module.exports,
    createRequire(BUNDLE_FILE),
    module,
    BUNDLE_FILE,
    DIST,
  );
  return { exports: module.exports, script, cacheAccepted: cachedData !== undefined && !script.cachedDataRejected };
}

function readOptional(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}
