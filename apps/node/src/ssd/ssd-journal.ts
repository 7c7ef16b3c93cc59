// One SSD drive's journal file (the adapter around journal-codec.ts): replayed in chunks at start, rewritten with
// only what survived (so a torn tail or a damaged record never stays in front of new appends), then appended to.
// Appends are serialised and each ends with fdatasync: a put is durable before the block it names is advertised.
// Compaction rewrites the live records to a temporary file, syncs it and renames it over the journal (then syncs
// the directory), so a crash at any point leaves either the old or the new journal whole.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { openSync, fsyncSync, closeSync } from 'node:fs';
import { decodeRecords, encodeRecords, type SsdPut } from './journal-codec.js';
import { JournalReplay } from './journal-replay.js';

const CHUNK = 16 * 1024 * 1024;

export interface ReplayResult {
  live: SsdPut[];
  /** Records dropped: torn or damaged. */
  dropped: number;
  records: number;
  bytes: number;
}

export class SsdJournal {
  private fh: FileHandle | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  /** Bytes in the journal file now. */
  bytes = 0;

  private constructor(
    readonly path: string,
    private readonly dir: string,
  ) {}

  /** Replays the journal at `path` (none yet: empty), rewrites it with what survived, and opens it for appends. */
  static async open(path: string, dir: string, drive: number): Promise<{ journal: SsdJournal; replay: ReplayResult }> {
    const j = new SsdJournal(path, dir);
    const replay = await j.replay(drive);
    await j.rewrite(encodeRecords(replay.live));
    return { journal: j, replay };
  }

  private async replay(drive: number): Promise<ReplayResult> {
    const r = new JournalReplay();
    let dropped = 0;
    let bytes = 0;
    let fh: FileHandle;
    try {
      fh = await open(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { live: [], dropped: 0, records: 0, bytes: 0 };
      throw err;
    }
    try {
      const size = (await fh.stat()).size;
      let carry = Buffer.alloc(0);
      for (let pos = 0; pos < size;) {
        const chunk = Buffer.alloc(Math.min(CHUNK, size - pos));
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        bytes += bytesRead;
        const buf = carry.length ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
        // a journal belongs to its drive's directory: records name that drive, whatever --ssd-path order wrote them
        const d = decodeRecords(buf, (rec) => r.apply({ ...rec, file: drive }), pos >= size);
        dropped += d.dropped;
        carry = Buffer.from(buf.subarray(d.consumed));
      }
    } finally {
      await fh.close();
    }
    return { live: r.live(), dropped, records: r.records, bytes };
  }

  /** Appends encoded records (encodeRecords) and syncs them (serialised with other appends and compactions). */
  append(buf: Buffer): Promise<void> {
    if (buf.length === 0) return Promise.resolve();
    return this.serial(async () => {
      const fh = this.handle();
      await fh.write(buf, 0, buf.length, this.bytes);
      await fh.datasync();
      this.bytes += buf.length;
    });
  }

  /** Replaces the journal with exactly the encoded records `live` (compaction). */
  compact(live: Buffer): Promise<void> {
    return this.serial(() => this.rewrite(live));
  }

  async close(): Promise<void> {
    await this.serial(async () => {
      await this.fh?.close();
      this.fh = undefined;
    });
  }

  private async rewrite(live: Buffer): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const out = await open(tmp, 'w', 0o600);
    const bytes = live.length;
    try {
      for (let at = 0; at < bytes;) at += (await out.write(live, at, bytes - at, at)).bytesWritten;
      await out.datasync();
    } finally {
      await out.close();
    }
    await this.fh?.close();
    this.fh = undefined;
    await rename(tmp, this.path);
    syncDir(this.dir);
    this.fh = await open(this.path, 'r+');
    this.bytes = bytes;
  }

  private handle(): FileHandle {
    if (!this.fh) throw new Error(`${this.path}: journal closed`);
    return this.fh;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** Removes a drive's journal (--ssd-wipe). */
export async function wipeJournal(path: string): Promise<void> {
  await rm(path, { force: true });
  await rm(`${path}.tmp`, { force: true });
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
