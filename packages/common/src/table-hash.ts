// tableHash: a fast 32-bit hash of a byte string, for the open-addressing tables of the metaserver index and the node's
// block index. Block hashes are usually uniform already, but test and tool hashes often are not (counters at
// either end, repeated bytes), so every byte is mixed in, a word at a time (a 32-byte key costs 8 multiplies).
// The result is a signed int32 (the same 32 bits as a uint32): V8 keeps int32 values unboxed, while a uint32
// above 2^31 returned from a call that is not inlined becomes a heap number (an allocation per lookup).

export const TABLE_HASH_SEED = 0x9747b28c;

export function tableHash(buf: Uint8Array, off: number, len: number, seed = TABLE_HASH_SEED): number {
  let h = seed ^ len;
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
  // murmur3 finaliser: every input bit reaches the low bits used as the slot index
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}
