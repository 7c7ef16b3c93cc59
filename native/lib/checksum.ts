// Page checksums: XXH3-64 (seed 0) from libxxhash, the function the copy engine applies to every page a holder
// first grants (CopyEngine.sum) and to every page a pull lands (CopyEngine.verify). This synchronous form is
// for tests and tools; the data path never hashes on the JavaScript thread.
import { invalidArgument, callNative } from './errors.js';
import { binding } from './loader.js';

/** XXH3-64 of `data` as an unsigned 64-bit bigint. */
export function pageChecksum(data: Uint8Array): bigint {
  if (!(data instanceof Uint8Array)) throw invalidArgument('data', 'a Buffer or Uint8Array', data);
  const fn = binding().pageChecksum as (d: Uint8Array) => bigint;
  return callNative(() => fn(data));
}
