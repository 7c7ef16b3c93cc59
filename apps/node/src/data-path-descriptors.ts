// Copy descriptors for one save or load call, written straight into one Float64Array (src | dst | len thirds)
// sized for the call up front: no per-block or per-segment allocation, and the three arrays the copier takes
// are views of it. Adjacent runs (src and dst both contiguous) coalesce into one descriptor.

export class DescriptorBatch {
  readonly src: Float64Array;
  readonly dst: Float64Array;
  readonly len: Float64Array;
  count = 0;

  /** Room for `capacity` descriptors (one per segment of every block of the call). */
  constructor(capacity: number) {
    const all = new Float64Array(capacity * 3);
    this.src = all.subarray(0, capacity);
    this.dst = all.subarray(capacity, 2 * capacity);
    this.len = all.subarray(2 * capacity);
  }

  add(src: number, dst: number, len: number): void {
    const n = this.count - 1;
    if (n >= 0 && this.src[n]! + this.len[n]! === src && this.dst[n]! + this.len[n]! === dst) {
      this.len[n]! += len;
      return;
    }
    this.src[n + 1] = src;
    this.dst[n + 1] = dst;
    this.len[n + 1] = len;
    this.count = n + 2;
  }

  /**
   * One block: segment s lives at `regionBase + segmentOffsets[s]` in the region and at `page + s * segmentBytes`
   * in the pool. Gathers into the page when `toPool`, scatters back otherwise.
   */
  block(segmentOffsets: Float64Array, regionBase: number, segmentBytes: number, page: number, toPool: boolean): void {
    for (let s = 0; s < segmentOffsets.length; s++) {
      const regionOff = segmentOffsets[s]! + regionBase;
      const pageOff = page + s * segmentBytes;
      if (toPool) this.add(regionOff, pageOff, segmentBytes);
      else this.add(pageOff, regionOff, segmentBytes);
    }
  }

  /** The filled descriptors as (src, dst, len) views. */
  arrays(): { src: Float64Array; dst: Float64Array; len: Float64Array } {
    const n = this.count;
    return { src: this.src.subarray(0, n), dst: this.dst.subarray(0, n), len: this.len.subarray(0, n) };
  }
}
