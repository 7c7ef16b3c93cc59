// Reusable scratch memory for PrefixQuery, so a query allocates nothing but its answer.
// Slot s (a node's interned slot) is query candidate candOf[s] while mark[s] === stamp; per candidate c: its node
// slot, the prefix counted so far, the last hash index it was seen owning, how many of its prefix's blocks it holds
// on SSD only, and the list of still-counting ones.

export class PrefixScratch {
  mark = new Uint32Array(64);
  candOf = new Uint32Array(64);
  slot = new Uint32Array(8);
  prefix = new Int32Array(8);
  seen = new Int32Array(8);
  ssd = new Int32Array(8);
  active = new Int32Array(8);
  /** Number of candidates of the current query. */
  count = 0;
  private stamp = 0;
  /** A query's packed hashes as int32 words (qbytes: the same memory as bytes). */
  private qwords = new Int32Array(512);
  private qbytes = new Uint8Array(this.qwords.buffer);

  /** Starts a query over node slots [0, slotBound); returns its stamp. */
  begin(slotBound: number): number {
    this.count = 0;
    if (this.mark.length <= slotBound) {
      const n = Math.max(64, slotBound * 2);
      const mark = new Uint32Array(n);
      mark.set(this.mark);
      this.mark = mark;
      this.candOf = new Uint32Array(n);
    }
    this.stamp = (this.stamp + 1) >>> 0;
    if (this.stamp === 0) {
      this.mark.fill(0);
      this.stamp = 1;
    }
    return this.stamp;
  }

  /** Adds node slot `slot` as the next candidate, counting from `prefix`, with `ssd` blocks on SSD only so far. */
  add(slot: number, stamp: number, prefix: number, ssd: number): void {
    const c = this.count;
    if (c === this.slot.length) this.grow();
    this.slot[c] = slot;
    this.prefix[c] = prefix;
    this.seen[c] = 0;
    this.ssd[c] = ssd;
    this.active[c] = c;
    this.mark[slot] = stamp;
    this.candOf[slot] = c;
    this.count = c + 1;
  }

  /** packed's bytes copied into the aligned int32 scratch (for word-wise key compares); valid until the next call. */
  wordsOf(packed: Uint8Array): Int32Array {
    if (this.qbytes.length < packed.length) {
      const buffer = new ArrayBuffer((Math.max(packed.length, 2 * this.qbytes.length) + 3) & ~3);
      this.qwords = new Int32Array(buffer);
      this.qbytes = new Uint8Array(buffer);
    }
    this.qbytes.set(packed);
    return this.qwords;
  }

  private grow(): void {
    const n = this.slot.length * 2;
    const slot = new Uint32Array(n);
    slot.set(this.slot);
    const prefix = new Int32Array(n);
    prefix.set(this.prefix);
    const seen = new Int32Array(n);
    seen.set(this.seen);
    const ssd = new Int32Array(n);
    ssd.set(this.ssd);
    const active = new Int32Array(n);
    active.set(this.active);
    Object.assign(this, { slot, prefix, seen, ssd, active });
  }
}
