// Packed hash lists (DESIGN §5): a list travels as one blob plus hash_len. Hashes are 1..64 bytes, all of one
// length within a list. Helpers here validate, pack and unpack, and turn hashes into compact map keys.
import { invalid } from './errors.js';

export const MAX_HASH_BYTES = 64;
export const MAX_HASHES_PER_LIST = 1 << 20;

export interface PackedHashes {
  packed: Buffer;
  hashLen: number;
}

/** Validates a wire HashList and returns it with its count (at most `maxCount` hashes). Errors name `field`. */
export function checkHashList(
  list: PackedHashes | undefined,
  field = 'hashes',
  opts: { allowEmpty?: boolean; maxCount?: number } = {},
): PackedHashes & { count: number } {
  if (!list || list.packed.length === 0) {
    if (opts.allowEmpty) return { packed: Buffer.alloc(0), hashLen: list?.hashLen ?? 0, count: 0 };
    throw invalid(field, 'expected at least one hash');
  }
  const { packed, hashLen } = list;
  if (!Number.isInteger(hashLen) || hashLen < 1 || hashLen > MAX_HASH_BYTES) {
    throw invalid(`${field}.hash_len`, `expected 1..${MAX_HASH_BYTES} bytes`, hashLen);
  }
  if (packed.length % hashLen !== 0) {
    throw invalid(`${field}.packed`, `expected a multiple of hash_len ${hashLen} bytes`, packed.length);
  }
  const count = packed.length / hashLen;
  const maxCount = opts.maxCount ?? MAX_HASHES_PER_LIST;
  if (count > maxCount) throw invalid(field, `expected at most ${maxCount} hashes`, count);
  return { packed, hashLen, count };
}

/** Packs equal-length hashes. Throws when lengths differ or are out of range. */
export function packHashes(hashes: readonly Uint8Array[], field = 'hashes'): PackedHashes {
  const hashLen = listHashLen(hashes, field);
  const packed = Buffer.allocUnsafe(hashLen * hashes.length);
  copyHashes(hashes, packed, 0);
  return { packed, hashLen };
}

/**
 * The length of a list's hashes, checked as packHashes checks them (1..MAX_HASH_BYTES, all equal; 0 when the list
 * is empty). Errors name `field`.
 */
export function listHashLen(hashes: readonly Uint8Array[], field = 'hashes'): number {
  if (hashes.length === 0) return 0;
  const hashLen = hashes[0]!.length;
  if (hashLen < 1 || hashLen > MAX_HASH_BYTES)
    throw invalid(`${field}[0]`, `expected 1..${MAX_HASH_BYTES} bytes`, hashLen);
  for (let i = 1; i < hashes.length; i++) {
    const len = hashes[i]!.length;
    if (len !== hashLen) throw invalid(`${field}[${i}]`, `expected ${hashLen} bytes like hashes[0]`, len);
  }
  return hashLen;
}

/** Writes hashes back to back into `dst` from `offset` (their lengths checked by listHashLen). */
export function copyHashes(hashes: HashInput, dst: Uint8Array, offset: number): void {
  if ('packed' in hashes) {
    dst.set(hashes.packed, offset);
    return;
  }
  for (let i = 0, at = offset; i < hashes.length; i++) {
    const h = hashes[i]!;
    dst.set(h, at);
    at += h.length;
  }
}

/** Hashes as given by callers: a list of equal-length byte strings, or a list already packed. */
export type HashInput = readonly Uint8Array[] | { packed: Uint8Array; hashLen: number };

/** Any HashInput as a wire HashList: a list is packed (equal lengths checked), a packed one is used as is (no copy). */
export function toHashList(hashes: HashInput, field = 'hashes'): PackedHashes {
  if (!('packed' in hashes)) return packHashes(hashes, field);
  const { packed, hashLen } = hashes;
  return {
    packed: Buffer.isBuffer(packed) ? packed : Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength),
    hashLen,
  };
}

/** Zero-copy views of each hash in a packed list. */
export function unpackHashes(list: PackedHashes): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + list.hashLen <= list.packed.length && list.hashLen > 0; off += list.hashLen) {
    out.push(list.packed.subarray(off, off + list.hashLen));
  }
  return out;
}

/** A hash as a string map key (latin1: one char per byte, cheap to build and compare). */
export function hashKey(packed: Buffer, index: number, hashLen: number): string {
  return packed.toString('latin1', index * hashLen, (index + 1) * hashLen);
}

export function hashFromKey(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}

export function hexToHashes(csv: string, field = 'hashes'): Buffer[] {
  const parts = csv
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) throw invalid(field, 'expected comma-separated hex hashes', csv);
  return parts.map((hex, i) => {
    if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw invalid(`${field}[${i}]`, 'expected an even number of hex digits', hex);
    if (hex.length / 2 > MAX_HASH_BYTES)
      throw invalid(`${field}[${i}]`, `expected at most ${MAX_HASH_BYTES} bytes`, hex);
    return Buffer.from(hex, 'hex');
  });
}

/** Packs a little-endian uint32 array (block ids) into bytes, and back. */
export function packU32(values: ArrayLike<number>): Buffer {
  const out = Buffer.allocUnsafe(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeUInt32LE(values[i]!, i * 4);
  return out;
}

export function unpackU32(bytes: Buffer, field = 'block_ids'): Uint32Array {
  if (bytes.length % 4 !== 0)
    throw invalid(field, 'expected packed little-endian uint32 (length a multiple of 4)', bytes.length);
  const out = new Uint32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readUInt32LE(i * 4);
  return out;
}

/** Packs little-endian uint64 offsets (exact below 2^53) and back. */
export function packU64(values: ArrayLike<number>): Buffer {
  const out = Buffer.allocUnsafe(values.length * 8);
  for (let i = 0; i < values.length; i++) out.writeBigUInt64LE(BigInt(values[i]!), i * 8);
  return out;
}

export function unpackU64(bytes: Buffer, field = 'offsets'): Float64Array {
  if (bytes.length % 8 !== 0)
    throw invalid(field, 'expected packed little-endian uint64 (length a multiple of 8)', bytes.length);
  const out = new Float64Array(bytes.length / 8);
  for (let i = 0; i < out.length; i++) {
    const v = bytes.readBigUInt64LE(i * 8);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${field}[${i}]`, 'offset beyond 2^53', v.toString());
    out[i] = Number(v);
  }
  return out;
}
