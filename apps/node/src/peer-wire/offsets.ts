// Page offsets on the Peer wire (DESIGN §5: descriptor lists travel as packed little-endian uint64 arrays). The one
// encoding both sides share: the serving side packs a grant's offsets, the reading side unpacks them. Pure.
import { invalid } from '@kvfabric/common';

const TWO32 = 2 ** 32;
const MAX_HIGH = 2 ** 21; // offsets stay below 2^53

/** Packs page offsets as little-endian uint64. */
export function packOffsets(offsets: Float64Array): Buffer {
  const b = Buffer.allocUnsafe(offsets.length * 8);
  for (let i = 0; i < offsets.length; i++) {
    const v = offsets[i]!;
    const high = Math.floor(v / TWO32);
    b.writeUInt32LE(v - high * TWO32, i * 8);
    b.writeUInt32LE(high, i * 8 + 4);
  }
  return b;
}

/** Unpacks little-endian uint64 page offsets; INVALID_ARGUMENT-style errors name `field`. */
export function unpackOffsets(b: Uint8Array, field = 'page_offsets'): Float64Array {
  if (b.length % 8 !== 0) throw invalid(field, 'expected a multiple of 8 bytes', b.length);
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const out = new Float64Array(buf.length / 8);
  for (let i = 0; i < out.length; i++) {
    const high = buf.readUInt32LE(i * 8 + 4);
    if (high >= MAX_HIGH)
      throw invalid(`${field}[${i}]`, 'expected an offset below 2^53', buf.readBigUInt64LE(i * 8).toString());
    out[i] = high * TWO32 + buf.readUInt32LE(i * 8);
  }
  return out;
}
