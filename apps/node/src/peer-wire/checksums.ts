// Page checksums on the Peer wire: a PrepareRead answer carries one little-endian uint64 per page (XXH3-64), in the
// order of its page offsets. In memory both sides keep them as (low, high) uint32 pairs (what the copy engine hands
// out and checks against), so no bigint is made per page. Pure.
import { invalid } from '@kvfabric/common';

/** Packs (low, high) pairs as little-endian uint64. */
export function packChecksums(sums: Uint32Array): Buffer {
  const b = Buffer.allocUnsafe(sums.length * 4);
  for (let i = 0; i < sums.length; i++) b.writeUInt32LE(sums[i]!, i * 4);
  return b;
}

/** Unpacks little-endian uint64 checksums into (low, high) pairs; errors name `field`. */
export function unpackChecksums(b: Uint8Array, field = 'page_checksums'): Uint32Array {
  if (b.length % 8 !== 0) throw invalid(field, 'expected a multiple of 8 bytes', b.length);
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const out = new Uint32Array(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readUInt32LE(i * 4);
  return out;
}
