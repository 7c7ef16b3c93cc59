// Fixed-size chunks of typed arrays indexed by a dense integer id. Growing never copies (no doubling slack
// beyond one chunk), which keeps the index's bytes per entry flat at 10M entries.

export const CHUNK_SHIFT = 12;
export const CHUNK_SIZE = 1 << CHUNK_SHIFT; // ids per chunk
export const CHUNK_MASK = CHUNK_SIZE - 1;

/** A growable array of uint32 in 4096-element chunks (16 KiB each). */
export class ChunkedU32 {
  readonly chunks: Uint32Array[] = [];

  get capacity(): number {
    return this.chunks.length * CHUNK_SIZE;
  }

  /** Makes ids [0, n) addressable. New elements are 0. */
  ensure(n: number): void {
    while (this.chunks.length * CHUNK_SIZE < n) this.chunks.push(new Uint32Array(CHUNK_SIZE));
  }

  get(i: number): number {
    return this.chunks[i >>> CHUNK_SHIFT]![i & CHUNK_MASK]!;
  }

  set(i: number, value: number): void {
    this.chunks[i >>> CHUNK_SHIFT]![i & CHUNK_MASK] = value;
  }

  bytes(): number {
    return this.chunks.length * CHUNK_SIZE * 4;
  }
}

/** A growable array of uint16 in 4096-element chunks (8 KiB each). */
export class ChunkedU16 {
  readonly chunks: Uint16Array[] = [];

  ensure(n: number): void {
    while (this.chunks.length * CHUNK_SIZE < n) this.chunks.push(new Uint16Array(CHUNK_SIZE));
  }

  get(i: number): number {
    return this.chunks[i >>> CHUNK_SHIFT]![i & CHUNK_MASK]!;
  }

  set(i: number, value: number): void {
    this.chunks[i >>> CHUNK_SHIFT]![i & CHUNK_MASK] = value;
  }

  bytes(): number {
    return this.chunks.length * CHUNK_SIZE * 2;
  }
}

/** Fixed-width byte records (block hashes) in chunks of 4096 records. */
export class ChunkedBytes {
  readonly chunks: Uint8Array[] = [];
  /** Int32 views of the same chunks when width is a multiple of 4 (for word-wise compares), else empty. */
  readonly words: Int32Array[] = [];

  constructor(readonly width: number) {}

  ensure(n: number): void {
    while (this.chunks.length * CHUNK_SIZE < n) {
      const chunk = new Uint8Array(CHUNK_SIZE * this.width);
      this.chunks.push(chunk);
      if (this.width % 4 === 0) this.words.push(new Int32Array(chunk.buffer));
    }
  }

  /** Copies `width` bytes from src[off..] into record i. */
  write(i: number, src: Uint8Array, off: number): void {
    this.chunks[i >>> CHUNK_SHIFT]!.set(src.subarray(off, off + this.width), (i & CHUNK_MASK) * this.width);
  }

  /** True when record i equals src[off, off + width). */
  equals(i: number, src: Uint8Array, off: number): boolean {
    const chunk = this.chunks[i >>> CHUNK_SHIFT]!;
    const base = (i & CHUNK_MASK) * this.width;
    for (let k = 0; k < this.width; k++) if (chunk[base + k] !== src[off + k]) return false;
    return true;
  }

  /**
   * True when record i equals src[at, at + width / 4): the same bytes viewed as int32 words (width a multiple of 4;
   * src an Int32Array view of the bytes to compare). A quarter of the loads and compares of `equals`.
   */
  equalsWords(i: number, src: Int32Array, at: number): boolean {
    const n = this.width >>> 2;
    const chunk = this.words[i >>> CHUNK_SHIFT]!;
    const base = (i & CHUNK_MASK) * n;
    for (let k = 0; k < n; k++) if (chunk[base + k] !== src[at + k]) return false;
    return true;
  }

  /** The chunk holding record i and the record's offset inside it (for hashing without a copy). */
  locate(i: number): [Uint8Array, number] {
    return [this.chunks[i >>> CHUNK_SHIFT]!, (i & CHUNK_MASK) * this.width];
  }

  /** A copy of record i. */
  read(i: number): Buffer {
    const [chunk, off] = this.locate(i);
    return Buffer.from(chunk.subarray(off, off + this.width));
  }

  bytes(): number {
    return this.chunks.length * CHUNK_SIZE * this.width;
  }
}
