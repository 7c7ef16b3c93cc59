// The read pipeline (DESIGN §2 "Remote pull"): moves chunks and checks what landed, nothing else. A pull session
// hands it chunks whose local pages are set up and whose grant is known; `lanes` workers each take the next chunk,
// wait for the node-wide bandwidth cap, `readv` it straight into the pool under the chunk's deadline with the
// holder's checksums, and hand the outcome back. Every page is checked natively: a transport that receives the
// bytes on its own thread (tcp) sums each page as it lands and answers with the pages that differ; for one whose
// bytes land without the CPU (verbs) the lane has the copy engine's threads verify the chunk, while its next readv
// is on the wire (one verification per lane at a time), so checking pages never leaves a connection idle. What a
// chunk means (slots, seals, grants) is the session's business.
import type { GrantId, ReadResult, Transport } from '@kvfabric/native';
import { sleep } from './pull-types.js';

/** One readv: `remote` pages of `peer` under a grant into `local` pool pages, all before `untilMs`. */
export interface ChunkRead {
  peer: string;
  grantId: GrantId;
  /** The grant's transport key (verbs: memory windows). */
  key: Buffer;
  remote: Float64Array;
  local: Float64Array;
  lengths: Float64Array;
  /** Every page of the chunk is this long. */
  pageBytes: number;
  /** The holder's checksum of each page, (low, high) pairs in the order of `local`. */
  checksums: Uint32Array;
  /** The read must start and finish before this (the grant's expiry or the fetch's deadline, whichever is first). */
  untilMs: number;
}

/**
 * landed: every byte arrived and every page matched its checksum; late: it could not start before `untilMs`;
 * mismatches: the bytes arrived but these pages (indexes into `local`) differ from their checksums; else the
 * readv's (or the verification's) error.
 */
export type ChunkOutcome = 'landed' | 'late' | { mismatches: Uint32Array } | { error: unknown };

/** Checks landed pages of the node's pool against checksums; resolves with the indexes of those that differ. */
export type PageVerifier = (local: Float64Array, pageBytes: number, expected: Uint32Array) => Promise<Uint32Array>;

/** Where chunks come from and where their outcomes go (a pull session). */
export interface ChunkSource<C extends ChunkRead> {
  /** The next chunk to read; undefined when nothing more is to be read. */
  next(): Promise<C | undefined>;
  settle(chunk: C, outcome: ChunkOutcome): void;
}

export interface ReadPipelineOptions {
  transport: Pick<Transport, 'readv'>;
  verify: PageVerifier;
  /** Node-wide pull bandwidth cap in bytes/s (0: none). */
  maxBytesPerSec: number;
}

export class ReadPipeline {
  private paceAtMs = 0;

  constructor(private readonly opts: ReadPipelineOptions) {}

  /**
   * Reads every chunk `source` hands out, `lanes` readvs at a time; resolves when the source has no more and every
   * chunk was settled.
   */
  async run<C extends ChunkRead>(source: ChunkSource<C>, lanes: number): Promise<void> {
    const lane = async () => {
      let checking: Promise<void> | undefined; // the previous chunk's verification
      for (let chunk = await source.next(); chunk; chunk = await source.next()) {
        const c = chunk;
        const moved = await this.read(c);
        await checking;
        checking = this.check(c, moved).then((outcome) => source.settle(c, outcome));
      }
      await checking;
    };
    await Promise.all(Array.from({ length: Math.max(1, lanes) }, lane));
  }

  /** The chunk's readv: what it resolved with once every byte arrived, else the outcome. */
  private async read(c: ChunkRead): Promise<ReadResult | Exclude<ChunkOutcome, 'landed'>> {
    let bytes = 0;
    for (const n of c.lengths) bytes += n;
    if (!(await this.pace(bytes, c.untilMs))) return 'late';
    const left = c.untilMs - Date.now();
    if (left <= 0) return 'late';
    try {
      return await this.opts.transport.readv(c.peer, c.grantId, c.remote, c.local, c.lengths, {
        timeoutMs: Math.max(1, Math.floor(left)),
        grantKey: c.key,
        expect: { pageBytes: c.pageBytes, checksums: c.checksums },
      });
    } catch (error) {
      return { error };
    }
  }

  /** The outcome of a chunk whose readv ended (`moved`): its pages checked against their checksums if it landed. */
  private async check(c: ChunkRead, moved: ReadResult | Exclude<ChunkOutcome, 'landed'>): Promise<ChunkOutcome> {
    if (typeof moved === 'string' || !('bytes' in moved)) return moved;
    try {
      const mismatches = moved.mismatches ?? (await this.opts.verify(c.local, c.pageBytes, c.checksums));
      return mismatches.length === 0 ? 'landed' : { mismatches };
    } catch (error) {
      return { error };
    }
  }

  /** Waits for the node-wide bandwidth cap, if any; false when the batch could not start before `untilMs`. */
  private async pace(bytes: number, untilMs: number): Promise<boolean> {
    const rate = this.opts.maxBytesPerSec;
    if (rate <= 0) return true;
    const now = Date.now();
    const start = Math.max(now, this.paceAtMs);
    if (start >= untilMs) return false;
    this.paceAtMs = start + (bytes / rate) * 1000;
    if (start > now) await sleep(start - now);
    return true;
  }
}
