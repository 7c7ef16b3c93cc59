// The serving side of remote pulls, free of gRPC: admits readers (transport handshake, one session per reader),
// pins the longest held prefix of a PrepareRead and grants the reader its pages, releases and expires grants.
// The bytes themselves are served by the transport (NIC or native thread), never by this code.
import { randomBytes } from 'node:crypto';
import { KvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import type { Transport } from '@kvfabric/native';
import type { BlockIndex } from '../block-index.js';
import type { NamespaceRegistry } from '../namespaces.js';
import { GrantTable, type Grant } from './grant-table.js';

export interface PeerServerOptions {
  nodeId: string;
  transport: Transport;
  index: BlockIndex;
  namespaces: NamespaceRegistry;
  grantTtlMs: number;
  logger: Logger;
  now?: () => number;
}

export interface GrantAnswer {
  grantId: number;
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
}

export class PeerServer {
  readonly grants: GrantTable;
  readonly counters = { handshakes: 0, prepareReads: 0, grantedBlocks: 0, emptyGrants: 0 };
  private readonly sessions = new Map<string, bigint>();
  private readonly handshaking = new Map<string, Promise<{ material: Buffer; session: bigint }>>();

  constructor(private readonly opts: PeerServerOptions) {
    const { index, transport, logger } = opts;
    this.grants = new GrantTable({
      ttlMs: opts.grantTtlMs,
      now: opts.now,
      pin: (slots) => index.pinMany(slots, slots.length),
      unpin: (slots) => index.unpinMany(slots, slots.length),
      onEnded: (g, why) => {
        if (why === 'expired') logger.debug({ peer: g.owner, grant: g.id, blocks: g.slots.length }, 'grant expired');
        return transport.removeGrant(g.id).catch((err: unknown) => {
          logger.warn({ peer: g.owner, grant: g.id, err: (err as Error).message }, 'transport could not end a grant');
        });
      },
    });
  }

  get peers(): number {
    return this.sessions.size;
  }

  /**
   * Admits `peer` with its transport material; returns ours and a fresh session. Concurrent handshakes of one
   * peer share one transport exchange (a second would replace the secret the first one handed out).
   */
  async handshake(peer: string, material: Buffer): Promise<{ material: Buffer; session: bigint }> {
    const running = this.handshaking.get(peer);
    if (running) return running;
    const p = (async () => {
      const ours = await this.opts.transport.acceptPeer(peer, material);
      // A reader handshakes again only after its side broke: what it was granted before is unusable now.
      if (this.sessions.has(peer)) this.grants.dropPeer(peer);
      const session = randomBytes(8).readBigUInt64LE(0) || 1n;
      this.sessions.set(peer, session);
      this.counters.handshakes++;
      this.opts.logger.info({ peer }, 'peer handshake');
      return { material: ours, session };
    })().finally(() => this.handshaking.delete(peer));
    this.handshaking.set(peer, p);
    return p;
  }

  /** Pins the longest prefix of `packed` this node holds (sealed blocks, in prefix order) and grants it to `peer`. */
  async prepareRead(
    peer: string,
    session: bigint,
    namespace: string,
    packed: Buffer,
    hashLen: number,
  ): Promise<GrantAnswer> {
    const known = this.sessions.get(peer);
    if (known === undefined || known !== session) {
      throw new KvError(
        'SESSION_UNKNOWN',
        `session: peer ${peer} has no handshake with session ${session}; handshake again`,
      );
    }
    this.counters.prepareReads++;
    const ns = this.opts.namespaces.byNameOrUndefined(namespace);
    const count = packed.length / hashLen;
    const slots = new Int32Array(count);
    const blocks = ns ? this.opts.index.prefix(ns.id, packed, hashLen, count, slots) : 0;
    const empty = {
      grantId: 0,
      blocks: 0,
      shards: ns?.shards ?? 0,
      pageBytes: ns?.pageBytes ?? 0,
      pageOffsets: new Float64Array(0),
      checksums: new Uint32Array(0),
      expiresAtMs: 0,
      key: Buffer.alloc(0),
    };
    if (blocks === 0 || !ns) {
      this.counters.emptyGrants++;
      return empty;
    }
    const grant = this.grants.issue(peer, slots.slice(0, blocks));
    let key: Buffer;
    try {
      key = await this.opts.transport.addGrant(grant.id, peer, this.ranges(grant), grant.expiresAtMs);
    } catch (err) {
      this.grants.release(grant.id, peer);
      throw err;
    }
    this.counters.grantedBlocks += blocks;
    const pageOffsets = new Float64Array(blocks * ns.shards);
    const checksums = new Uint32Array(2 * blocks * ns.shards);
    for (let b = 0, at = 0; b < blocks; b++) {
      const slot = grant.slots[b]!;
      for (let s = 0; s < ns.shards; s++) pageOffsets[b * ns.shards + s] = this.opts.index.page(slot, s);
      at = this.opts.index.checksumsInto(slot, checksums, at);
    }
    return {
      grantId: grant.id,
      blocks,
      shards: ns.shards,
      pageBytes: ns.pageBytes,
      pageOffsets,
      checksums,
      expiresAtMs: grant.expiresAtMs,
      key,
    };
  }

  releaseGrant(peer: string, grantId: number): void {
    this.grants.release(grantId, peer);
  }

  /** Forgets a reader: its session, its grants, its transport state. */
  dropPeer(peer: string): void {
    this.sessions.delete(peer);
    this.grants.dropPeer(peer);
    this.opts.transport.dropPeer(peer, 'serving');
  }

  sweep(): number {
    return this.grants.sweep();
  }

  close(): void {
    this.grants.clear();
    this.sessions.clear();
  }

  /**
   * (offset, length) pairs covering every page of the grant's blocks; pages adjacent in the pool (allocMany hands
   * out runs) share one range, so the transport checks and stores fewer.
   */
  private ranges(g: Grant): Float64Array {
    const { index } = this.opts;
    let n = 0;
    for (const slot of g.slots) n += index.shards(slot);
    const out = new Float64Array(n * 2);
    let o = 0;
    let ns = -1;
    let pageBytes = 0;
    for (const slot of g.slots) {
      if (index.ns(slot) !== ns) {
        ns = index.ns(slot);
        pageBytes = this.pageBytesOf(slot);
      }
      const shards = index.shards(slot);
      for (let s = 0; s < shards; s++) {
        const page = index.page(slot, s);
        if (o > 0 && out[o - 2]! + out[o - 1]! === page) {
          out[o - 1]! += pageBytes;
        } else {
          out[o++] = page;
          out[o++] = pageBytes;
        }
      }
    }
    return o === out.length ? out : out.slice(0, o);
  }

  private pageBytesOf(slot: number): number {
    return this.opts.namespaces.get(this.opts.index.ns(slot)).pageBytes;
  }
}
