// Loads the compiled addon (build/Release/kvfabric_native.node) with an actionable error when it is missing.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const candidates = [
  process.env.KVFABRIC_NATIVE_ADDON,
  join(root, 'build/Release/kvfabric_native.node'),
  join(root, 'build/Debug/kvfabric_native.node'),
].filter((p): p is string => typeof p === 'string' && p.length > 0);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeBinding = any;

let cached: NativeBinding | undefined;

/** The raw addon. Only the wrappers in native/lib call this; they validate every argument first. */
export function binding(): NativeBinding {
  if (cached) return cached;
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
  cached = createRequire(import.meta.url)(path);
  return cached;
}
