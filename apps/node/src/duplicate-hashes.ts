// Which hashes of one Save call repeat an earlier hash of the same call, straight from the packed request bytes:
// a small open-addressing table of call positions keyed by each hash's 32-bit digest, reused across calls (the
// save path asks once per hash and allocates nothing once the table has grown to the call size). Pure.
import { hashKey } from './hash-table.js';

export class DuplicateHashFilter {
  private table = new Int32Array(256); // per slot: call position + 1 (0: empty)
  private digests = new Int32Array(128);
  private mask = 0;
  private packed: Buffer = Buffer.alloc(0);
  private hashLen = 0;

  /** Starts a call of `count` hashes of `hashLen` bytes packed in `packed`. */
  reset(packed: Buffer, hashLen: number, count: number): this {
    let size = 16;
    while (size < count * 2) size *= 2;
    if (this.table.length < size) this.table = new Int32Array(size);
    else this.table.fill(0, 0, size);
    if (this.digests.length < count) this.digests = new Int32Array(size);
    this.mask = size - 1;
    this.packed = packed;
    this.hashLen = hashLen;
    return this;
  }

  /** True when hash `i` is the first of its value in the call (positions must be asked in increasing order). */
  isFirst(i: number): boolean {
    const { table, mask, packed, hashLen } = this;
    const off = i * hashLen;
    const h = hashKey(0, packed, off, hashLen);
    this.digests[i] = h;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const v = table[s]!;
      if (v === 0) {
        table[s] = i + 1;
        return true;
      }
      const j = v - 1;
      if (this.digests[j] === h && packed.compare(packed, j * hashLen, j * hashLen + hashLen, off, off + hashLen) === 0)
        return false;
    }
  }
}
