// The serving side of remote pulls, free of gRPC: admits readers (transport handshake, one session per reader,
// bounded in number and idle time), pins the longest held prefix of a PrepareRead and grants the reader its pages
// (within the node's grant pin budget), sums the granted pages that have no checksum yet (a save sums its pages as it
// copies them, so these are the few it could not: each is summed once, natively, while the grant pins it), releases and expires grants. Every request after the handshake names the
// reader's session; `reader()` turns it into the identity grants are bound to. The bytes themselves are served by
// the transport (NIC or native thread), never by this code.
import { randomBytes } from 'node:crypto';
import { KvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import type { GrantId, GrantPages, Transport } from '@kvfabric/native';
import type { BlockIndex } from '../block-index.js';
import type { NamespaceInfo, NamespaceRegistry } from '../namespaces.js';
import { GrantTable } from './grant-table.js';
import { ReaderSessions } from './reader-sessions.js';

/** The checksum of each `pageBytes`-long pool page at `pages`, (low, high) per page (the data path's copier). */
export type PageSummer = (pages: Float64Array, pageBytes: number) => Promise<Uint32Array>;

export interface PeerServerOptions {
  nodeId: string;
  transport: Transport;
  index: BlockIndex;
  namespaces: NamespaceRegistry;
  sum: PageSummer;
  grantTtlMs: number;
  /** Pool bytes all grants together may pin (--grant-pin-budget). */
  grantPinBudgetBytes?: number;
  /** Readers admitted at once (--max-readers) and how long an idle one is kept (--reader-idle-secs). */
  maxReaders?: number;
  readerIdleMs?: number;
  logger: Logger;
  now?: () => number;
  /** Brings blocks past the DRAM prefix in from the SSD tier before a grant (absent: DRAM only). */
  promote?: (ns: NamespaceInfo, packed: Buffer, hashLen: number, count: number) => Promise<number>;
}

export interface GrantAnswer {
  /** Empty when nothing was granted. */
  grantId: GrantId | '';
  blocks: number;
  shards: number;
  pageBytes: number;
  /** blocks × shards remote page offsets, block-major. */
  pageOffsets: Float64Array;
  /** The checksum of every page, as (low, high) pairs in the order of pageOffsets. */
  checksums: Uint32Array;
  expiresAtMs: number;
  /** What the reader's transport needs to read under the grant (verbs: memory window keys; tcp: empty). */
  key: Buffer;
  /** Pool bytes all grants may pin together (--grant-pin-budget), 0 for no budget: readers size windows to it. */
  pinBudgetBytes: number;
}

export class PeerServer {
  readonly grants: GrantTable;
  readonly counters = { handshakes: 0, prepareReads: 0, grantedBlocks: 0, emptyGrants: 0, summedPages: 0 };
  readonly readers: ReaderSessions;
  private readonly handshaking = new Map<string, Promise<{ material: Buffer; session: bigint }>>();

  constructor(private readonly opts: PeerServerOptions) {
    const { index, transport, logger } = opts;
    this.grants = new GrantTable({
      ttlMs: opts.grantTtlMs,
      now: opts.now,
      ...(opts.grantPinBudgetBytes !== undefined ? { pinBudgetBytes: opts.grantPinBudgetBytes } : {}),
      pin: (slots) => index.pinMany(slots, slots.length),
      unpin: (slots) => index.unpinMany(slots, slots.length),
      onEnded: (g, why) => {
        if (why === 'expired') logger.debug({ peer: g.owner, grant: g.id, blocks: g.slots.length }, 'grant expired');
        // The pages stay pinned until this settles: until no byte of them can leave any more.
        return transport.removeGrant(g.id).catch((err: unknown) => {
          logger.warn({ peer: g.owner, grant: g.id, err: (err as Error).message }, 'transport could not end a grant');
        });
      },
    });
    this.readers = new ReaderSessions({
      maxReaders: opts.maxReaders ?? 1024,
      idleMs: opts.readerIdleMs ?? 600_000,
      busy: (peer) => this.grants.heldBy(peer) > 0,
      ...(opts.now ? { now: opts.now } : {}),
    });
  }

  get peers(): number {
    return this.readers.size;
  }

  /**
   * The identity grants are bound to, for a request naming `peer` and `session`: today the peer id whose
   * handshake session this is (with mutual TLS, the certificate identity goes here). SESSION_UNKNOWN otherwise.
   */
  reader(peer: string, session: bigint): string {
    if (!this.readers.touch(peer, session)) {
      throw new KvError(
        'SESSION_UNKNOWN',
        `session: peer ${peer} has no handshake with session ${session}; handshake again`,
      );
    }
    return peer;
  }

  /**
   * Admits `peer` with its transport material; returns ours and a fresh session. Concurrent handshakes of one
   * peer share one transport exchange (a second would replace the secret the first one handed out).
   */
  async handshake(peer: string, material: Buffer): Promise<{ material: Buffer; session: bigint }> {
    const running = this.handshaking.get(peer);
    if (running) return running;
    const p = (async () => {
      const again = this.readers.has(peer);
      const displaced = this.readers.makeRoom(peer);
      if (displaced !== undefined) this.forget(displaced, 'displaced by a new reader (max-readers)');
      this.readers.admit(peer, 0n); // holds its place while the transport admits it (no request names session 0)
      let ours: Buffer;
      try {
        ours = await this.opts.transport.acceptPeer(peer, material);
      } catch (err) {
        this.readers.forget(peer);
        throw err;
      }
      if (!this.readers.has(peer)) {
        // Newer readers displaced this one while the transport admitted it (a flood of handshakes).
        this.opts.transport.dropPeer(peer, 'serving');
        throw new KvError('PEER_LIMIT_REACHED', `max-readers: displaced by newer readers while being admitted`);
      }
      // A reader handshakes again only after its side broke: what it was granted before is unusable now.
      if (again) this.grants.dropPeer(peer);
      const session = randomBytes(8).readBigUInt64LE(0) || 1n;
      this.readers.admit(peer, session);
      this.counters.handshakes++;
      this.opts.logger.info({ peer }, 'peer handshake');
      return { material: ours, session };
    })().finally(() => this.handshaking.delete(peer));
    this.handshaking.set(peer, p);
    return p;
  }

  /**
   * Pins the longest prefix of `packed` this node holds (sealed blocks, in prefix order) and grants it to `peer`.
   * First it releases `release`, grants of `peer` it is done with (all or none: see GrantTable.releaseMany); when
   * the new grant might not fit the pin budget beside their pins, it waits until the transport let go of them.
   */
  async prepareRead(
    peer: string,
    session: bigint,
    namespace: string,
    packed: Buffer,
    hashLen: number,
    release: readonly GrantId[] = [],
  ): Promise<GrantAnswer> {
    const owner = this.reader(peer, session);
    const released = release.length > 0 ? this.grants.releaseMany(release, owner, 'release_grant_ids') : undefined;
    this.counters.prepareReads++;
    const ns = this.opts.namespaces.byNameOrUndefined(namespace);
    const count = packed.length / hashLen;
    const asked = ns ? count * ns.shards * ns.pageBytes : 0;
    if (released && this.grants.pinnedBytes + asked > this.grants.pinBudgetBytes) await released;
    if (ns && this.opts.promote) await this.opts.promote(ns, packed, hashLen, count);
    const slots = new Int32Array(count);
    const blocks = ns ? this.opts.index.prefix(ns.id, packed, hashLen, count, slots) : 0;
    const empty: GrantAnswer = {
      grantId: '',
      blocks: 0,
      shards: ns?.shards ?? 0,
      pageBytes: ns?.pageBytes ?? 0,
      pageOffsets: new Float64Array(0),
      checksums: new Uint32Array(0),
      expiresAtMs: 0,
      key: Buffer.alloc(0),
      pinBudgetBytes: this.pinBudgetBytes,
    };
    if (blocks === 0 || !ns) {
      this.counters.emptyGrants++;
      return empty;
    }
    const grant = this.grants.issue(owner, slots.slice(0, blocks), blocks * ns.shards * ns.pageBytes);
    // One native call: every page, the checksums known, the pages not summed yet, the ranges to grant.
    const pages = this.opts.index.grantPages(grant.slots, blocks);
    // Both settle before the grant can end: the sums are written to slots the grant still pins.
    const [added, summed] = await Promise.allSettled([
      this.opts.transport.addGrant(grant.id, peer, pages.ranges, grant.expiresAtMs),
      this.sumUnsummed(grant.slots, pages, ns.pageBytes),
    ]);
    if (added.status === 'rejected' || summed.status === 'rejected') {
      this.grants.release(grant.id, owner);
      throw added.status === 'rejected' ? added.reason : (summed as PromiseRejectedResult).reason;
    }
    const key = added.value;
    this.counters.grantedBlocks += blocks;
    return {
      grantId: grant.id,
      blocks,
      shards: ns.shards,
      pageBytes: ns.pageBytes,
      pageOffsets: pages.pageOffsets,
      checksums: pages.checksums,
      expiresAtMs: grant.expiresAtMs,
      key,
      pinBudgetBytes: this.pinBudgetBytes,
    };
  }

  private get pinBudgetBytes(): number {
    const budget = this.grants.pinBudgetBytes;
    return Number.isFinite(budget) ? budget : 0;
  }

  /** Ends a grant for the reader it was granted to (GRANT_REFUSED for anyone else). */
  releaseGrant(peer: string, session: bigint, grantId: GrantId): void {
    this.grants.release(grantId, this.reader(peer, session));
  }

  /** Forgets a reader: its session, its grants, its transport state. */
  dropPeer(peer: string): void {
    this.readers.forget(peer);
    this.forget(peer, 'dropped');
  }

  /** Expires grants, then forgets readers idle for --reader-idle-secs; returns the grants expired. */
  sweep(): number {
    const expired = this.grants.sweep();
    for (const peer of this.readers.sweep()) this.forget(peer, 'idle (reader-idle-secs)');
    return expired;
  }

  close(): void {
    this.grants.clear();
    this.readers.clear();
  }

  /** Sums the granted pages not summed yet (saved, never granted) in one native batch; fills in their checksums. */
  private async sumUnsummed(slots: Int32Array, pages: GrantPages, pageBytes: number): Promise<void> {
    const n = pages.unsummed.length;
    if (n === 0) return;
    const offsets = new Float64Array(n);
    for (let k = 0; k < n; k++) offsets[k] = pages.pageOffsets[pages.unsummed[k]!]!;
    const sums = await this.opts.sum(offsets, pageBytes);
    this.opts.index.setChecksums(slots, slots.length, pages.unsummed, sums, pages.checksums);
    this.counters.summedPages += n;
  }

  private forget(peer: string, why: string): void {
    this.grants.dropPeer(peer);
    this.opts.transport.dropPeer(peer, 'serving');
    this.opts.logger.debug({ peer, why }, 'reader forgotten');
  }
}
