// Loads the compiled addons (build/Release/kvfabric_native.node, kvfabric_fdpass.node) with an actionable error when one is missing.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeBinding = any;

const cache = new Map<string, NativeBinding>();

function load(file: string, override: string | undefined): NativeBinding {
  const hit = cache.get(file);
  if (hit) return hit;
  const candidates = [override, join(root, `build/Release/${file}`), join(root, `build/Debug/${file}`)].filter(
    (p): p is string => typeof p === 'string' && p.length > 0,
  );
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    throw Object.assign(
      new Error(
        `@kvfabric/native: the addon is not built (looked in ${candidates.join(', ')}). ` +
          'Run `npm install` (or `npm run build -w @kvfabric/native`) on a machine with g++, make, python3, ' +
          'and Debian liburing-dev installed.',
      ),
      { code: 'INTERNAL' },
    );
  }
  const addon: NativeBinding = createRequire(import.meta.url)(path);
  cache.set(file, addon);
  return addon;
}

/** The raw addon. Only the wrappers in native/lib call this; they validate every argument first. */
export function binding(): NativeBinding {
  return load('kvfabric_native.node', process.env.KVFABRIC_NATIVE_ADDON);
}

/** The small engine-side addon (memfd regions, descriptor passing): all the engine SDK loads. */
export function fdPassBinding(): NativeBinding {
  return load('kvfabric_fdpass.node', undefined);
}
