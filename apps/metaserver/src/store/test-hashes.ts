// Packed hash lists for the store's unit tests.
import type { Hashes } from './types.js';

/** Hashes of `len` bytes: byte 0 = tag, bytes 1..4 = the id (big endian), the rest 0. */
export function hashes(ids: number[], tag = 7, len = 32): Hashes {
  const packed = Buffer.alloc(ids.length * len);
  ids.forEach((id, i) => {
    packed[i * len] = tag;
    packed.writeUInt32BE(id, i * len + 1);
  });
  return { packed, hashLen: len };
}

/** [a, b) */
export const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
