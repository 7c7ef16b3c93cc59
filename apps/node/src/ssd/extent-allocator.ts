// Space in one SSD file (pure): the file is cut into fixed segments; a free segment is given to one extent size
// (a block's pages: shards × slot bytes) when an extent of that size is needed, and returns to the free segments
// when its last extent is freed. An extent's offset is therefore always on its size's grid inside its segment,
// which is what lets a replayed journal claim extents back exactly (`claim`), refusing any that overlap.
export interface ExtentStats {
  capacityBytes: number;
  usedBytes: number;
  extents: number;
  freeSegments: number;
}

interface Segment {
  /** 0: free. */
  extentBytes: number;
  used: number;
  /** 1 where the extent is in use. */
  map: Uint8Array;
  /** Free extent indexes (built when the segment is assigned, or by finishClaims). */
  free: number[];
}

export class ExtentAllocator {
  readonly segments: number;
  private readonly segs: Segment[];
  private readonly freeSegs: number[] = [];
  /** Per extent size: the segments that have free extents. */
  private readonly withRoom = new Map<number, Set<number>>();
  private usedBytes = 0;
  private extents = 0;

  constructor(
    readonly capacityBytes: number,
    readonly segmentBytes: number,
  ) {
    this.segments = Math.floor(capacityBytes / segmentBytes);
    this.segs = Array.from({ length: this.segments }, () => ({
      extentBytes: 0,
      used: 0,
      map: new Uint8Array(0),
      free: [],
    }));
    for (let s = this.segments - 1; s >= 0; s--) this.freeSegs.push(s);
  }

  /** The offset of a new extent of `bytes`, or undefined when no segment has room (evict, then try again). */
  alloc(bytes: number): number | undefined {
    if (bytes <= 0 || bytes > this.segmentBytes) return undefined;
    let s = this.room(bytes).values().next().value;
    if (s === undefined) {
      s = this.freeSegs.pop();
      if (s === undefined) return undefined;
      this.assign(s, bytes);
      this.fillFree(s);
    }
    const seg = this.segs[s]!;
    const i = seg.free.pop()!;
    this.mark(s, i);
    return s * this.segmentBytes + i * bytes;
  }

  /** Frees an extent that `alloc` or `claim` handed out; false (nothing changes) for one that is not in use. */
  free(offset: number, bytes: number): boolean {
    const at = this.locate(offset, bytes);
    if (!at || !at.seg.map[at.i]) return false;
    const { s, seg, i } = at;
    seg.map[i] = 0;
    seg.used--;
    this.usedBytes -= bytes;
    this.extents--;
    if (seg.used === 0) {
      this.room(bytes).delete(s);
      seg.extentBytes = 0;
      seg.map = new Uint8Array(0);
      seg.free = [];
      this.freeSegs.push(s);
      return true;
    }
    seg.free.push(i);
    this.room(bytes).add(s);
    return true;
  }

  /**
   * Replay: takes the extent at `offset` as in use. False when it cannot be (outside the file, off its size's grid,
   * its segment holds another size, or it is taken). Call finishClaims() once every claim is in.
   */
  claim(offset: number, bytes: number): boolean {
    if (bytes <= 0 || bytes > this.segmentBytes || !Number.isSafeInteger(offset) || offset < 0) return false;
    const s = Math.floor(offset / this.segmentBytes);
    if (s >= this.segments) return false;
    const seg = this.segs[s]!;
    if (seg.extentBytes === 0) {
      this.freeSegs.splice(this.freeSegs.indexOf(s), 1);
      this.assign(s, bytes);
    }
    const at = this.locate(offset, bytes);
    if (!at || at.seg.map[at.i]) return false;
    this.mark(s, at.i);
    return true;
  }

  /** After the claims: the extents nobody claimed become free. */
  finishClaims(): void {
    for (let s = 0; s < this.segments; s++) {
      const seg = this.segs[s]!;
      if (seg.extentBytes === 0) continue;
      this.fillFree(s);
      if (seg.free.length > 0) this.room(seg.extentBytes).add(s);
      else this.room(seg.extentBytes).delete(s);
    }
  }

  stats(): ExtentStats {
    return {
      capacityBytes: this.segments * this.segmentBytes,
      usedBytes: this.usedBytes,
      extents: this.extents,
      freeSegments: this.freeSegs.length,
    };
  }

  private room(bytes: number): Set<number> {
    let set = this.withRoom.get(bytes);
    if (!set) this.withRoom.set(bytes, (set = new Set()));
    return set;
  }

  private assign(s: number, bytes: number): void {
    const seg = this.segs[s]!;
    seg.extentBytes = bytes;
    seg.used = 0;
    seg.map = new Uint8Array(Math.floor(this.segmentBytes / bytes));
  }

  private fillFree(s: number): void {
    const seg = this.segs[s]!;
    seg.free = [];
    for (let i = seg.map.length - 1; i >= 0; i--) if (!seg.map[i]) seg.free.push(i);
    if (seg.free.length > 0) this.room(seg.extentBytes).add(s);
  }

  private mark(s: number, i: number): void {
    const seg = this.segs[s]!;
    seg.map[i] = 1;
    seg.used++;
    this.usedBytes += seg.extentBytes;
    this.extents++;
    if (seg.used === seg.map.length) this.room(seg.extentBytes).delete(s);
  }

  private locate(offset: number, bytes: number): { s: number; seg: Segment; i: number } | undefined {
    const s = Math.floor(offset / this.segmentBytes);
    const seg = this.segs[s];
    if (!seg || seg.extentBytes !== bytes) return undefined;
    const within = offset - s * this.segmentBytes;
    if (within % bytes !== 0 || within / bytes >= seg.map.length) return undefined;
    return { s, seg, i: within / bytes };
  }
}
