// A fast 32-bit hash of a byte string for the open-addressing table. Block hashes are usually uniform already,
// but test and tool hashes often are not (counters, repeated bytes), so every byte is mixed in, a word at a time.
// The result is a signed int32 (the same 32 bits as uint32 would be): V8 keeps int32 values unboxed, while a uint32
// above 2^31 returned from a call that is not inlined becomes a heap number (an allocation per lookup).

export function hashBytes(buf: Uint8Array, off: number, len: number): number {
  let h = 0x9747b28c ^ len;
  let i = off;
  const end = off + len;
  for (; i + 4 <= end; i += 4) {
    const w = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    h = Math.imul(h ^ w, 0x5bd1e995);
    h ^= h >>> 15;
  }
  for (; i < end; i++) {
    h = Math.imul(h ^ buf[i]!, 0x5bd1e995);
    h ^= h >>> 15;
  }
  // murmur3 finaliser: every input bit affects the low bits used as the slot index
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}
