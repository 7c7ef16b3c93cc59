// The readers a serving node has admitted (one handshake session each), bounded two ways: a reader idle for
// `idleMs` is forgotten by the sweep, and past `maxReaders` a new handshake displaces the least recently used
// reader. Readers holding live grants are never displaced or swept (their grants end first, by release or
// expiry). Anyone who can reach the peer port can handshake, so without these bounds every handshake would leave
// a session (and a transport secret) behind for good. Pure: the caller forgets what `admit`/`sweep` return.
import { KvError } from '@kvfabric/common';

export interface ReaderSessionsOptions {
  maxReaders: number;
  idleMs: number;
  /** Whether the reader holds live grants (then it is kept). */
  busy: (peer: string) => boolean;
  now?: () => number;
}

interface Reader {
  session: bigint;
  lastUsedMs: number;
}

export class ReaderSessions {
  // Map order is use order: the first entry is the least recently used.
  private readonly readers = new Map<string, Reader>();
  private readonly now: () => number;
  readonly counters = { idle: 0, displaced: 0, refused: 0 };

  constructor(private readonly opts: ReaderSessionsOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.readers.size;
  }

  has(peer: string): boolean {
    return this.readers.has(peer);
  }

  /**
   * Makes room for `peer` (already admitted, or a new reader): returns the reader it displaces, if any. Throws
   * PEER_LIMIT_REACHED when every admitted reader holds live grants.
   */
  makeRoom(peer: string): string | undefined {
    if (this.readers.has(peer) || this.readers.size < this.opts.maxReaders) return undefined;
    for (const id of this.readers.keys()) {
      if (this.opts.busy(id)) continue;
      this.readers.delete(id);
      this.counters.displaced++;
      return id;
    }
    this.counters.refused++;
    throw new KvError(
      'PEER_LIMIT_REACHED',
      `max-readers: all ${this.opts.maxReaders} admitted readers hold live grants; try again later`,
    );
  }

  /** Records `peer`'s new session (call `makeRoom` first). */
  admit(peer: string, session: bigint): void {
    this.readers.delete(peer);
    this.readers.set(peer, { session, lastUsedMs: this.now() });
  }

  /** Whether `session` is `peer`'s live one; marks the reader used. */
  touch(peer: string, session: bigint): boolean {
    const r = this.readers.get(peer);
    if (!r || session === 0n || r.session !== session) return false;
    r.lastUsedMs = this.now();
    this.readers.delete(peer);
    this.readers.set(peer, r);
    return true;
  }

  forget(peer: string): boolean {
    return this.readers.delete(peer);
  }

  /** Forgets readers idle for `idleMs` without live grants; returns them. */
  sweep(): string[] {
    const cutoff = this.now() - this.opts.idleMs;
    const gone: string[] = [];
    for (const [id, r] of this.readers) {
      if (r.lastUsedMs > cutoff) break; // use order: everyone after this one was used later
      if (this.opts.busy(id)) continue;
      gone.push(id);
    }
    for (const id of gone) this.readers.delete(id);
    this.counters.idle += gone.length;
    return gone;
  }

  clear(): void {
    this.readers.clear();
  }
}
