// The reading side's connections to serving peers: one Peer gRPC client and one transport connection per peer,
// the handshake done once (single-flight: concurrent pulls from one peer share it) and redone after a transport
// error or a session the peer no longer knows. PrepareRead and ReleaseGrant go on the peer's GrantStream
// (peer-calls.ts); PrepareRead answers come back decoded (decodeReadGrant).
import { PeerClient, type TransportKind, type PrepareReadResponse } from '@kvfabric/proto';
import { KvError } from '@kvfabric/common';
import {
  CHANNEL_OPTIONS,
  clientCredentials,
  fromGrpcError,
  messageSizeOptions,
  tlsChannelOptions,
  type TlsMaterial,
} from '@kvfabric/common/rpc';
import { GRANT_ID_BYTES, type GrantId, type Transport } from '@kvfabric/native';
import { PEER_MAX_REQUEST_BYTES, PEER_MAX_RESPONSE_BYTES } from '../peer/peer-limits.js';
import { unpackChecksums } from '../peer-wire/checksums.js';
import { unpackOffsets } from '../peer-wire/offsets.js';
import { GRANT_STREAM_IDLE_MS, PeerCalls, unaryCall } from './peer-calls.js';
import { PullError, type ReadGrant } from './pull-types.js';

export interface PeerLinksOptions {
  nodeId: string;
  addr: string;
  transport: Transport;
  transportKind: TransportKind;
  /** Mutual TLS: each peer must present the node certificate its id names (NAME of NAME/RANDOM). */
  tls?: TlsMaterial | undefined;
}

/**
 * A PrepareRead answer as the reader uses it: ids and sizes as numbers, the page offsets and checksums unpacked.
 * Throws (a KvError, or PullError layout_mismatch when the offsets or checksums do not match the blocks) on an
 * answer that is not usable.
 */
export function decodeReadGrant(res: PrepareReadResponse): ReadGrant {
  const grant: ReadGrant = {
    id: Buffer.from(res.grantId).toString('hex'),
    blocks: res.blocks,
    shards: res.shards,
    pageBytes: Number(res.pageBytes),
    remote: new Float64Array(0),
    checksums: new Uint32Array(0),
    expiresAtMs: Number(res.expiresAtMs),
    key: Buffer.from(res.grantKey),
    pinBudgetBytes: Number(res.grantPinBudgetBytes),
  };
  if (res.blocks === 0) return grant;
  if (res.grantId.length !== GRANT_ID_BYTES) {
    throw new PullError('layout_mismatch', `grant_id of ${res.grantId.length} bytes, expected ${GRANT_ID_BYTES}`);
  }
  grant.remote = unpackOffsets(res.pageOffsets);
  if (grant.remote.length !== res.blocks * res.shards) {
    throw new PullError(
      'layout_mismatch',
      `${grant.remote.length} page offsets for ${res.blocks} blocks of ${res.shards} shards`,
    );
  }
  // Every page is verified before it seals: a grant without exactly one checksum per page can not be read (the
  // length is checked before anything is unpacked).
  const sums = res.pageChecksums.length;
  if (sums !== 8 * grant.remote.length) {
    throw new PullError(
      'layout_mismatch',
      `${sums % 8 === 0 ? sums / 8 : `${sums} bytes of`} page checksums for ${res.blocks} blocks of ${res.shards} shards`,
    );
  }
  grant.checksums = unpackChecksums(res.pageChecksums);
  return grant;
}

export class PeerLink {
  private session: bigint | undefined;
  private handshaking: Promise<bigint> | undefined;
  readonly rpc: PeerClient;
  private readonly calls: PeerCalls;
  lastUsedMs = Date.now();

  constructor(
    readonly peerId: string,
    readonly addr: string,
    private readonly opts: PeerLinksOptions,
    readonly counters: { handshakes: number; handshakeFailures: number },
  ) {
    const credentials = clientCredentials(opts.tls, { role: 'node', name: peerId.split('/')[0] });
    this.rpc = new PeerClient(addr, credentials, {
      ...CHANNEL_OPTIONS,
      ...tlsChannelOptions(opts.tls),
      ...messageSizeOptions(PEER_MAX_RESPONSE_BYTES, PEER_MAX_REQUEST_BYTES),
    });
    this.calls = new PeerCalls(this.rpc, peerId);
  }

  /** The live session, handshaking first when there is none (one handshake at a time per peer). */
  ready(deadlineMs: number): Promise<bigint> {
    this.lastUsedMs = Date.now();
    if (this.session !== undefined) return Promise.resolve(this.session);
    this.handshaking ??= this.handshake(deadlineMs).finally(() => (this.handshaking = undefined));
    return this.handshaking;
  }

  /** Forgets the session of `session` (a transport error or a refused session): the next pull handshakes again. */
  invalidate(session: bigint): void {
    if (this.session !== session) return; // someone already redid it
    this.session = undefined;
    this.opts.transport.dropPeer(this.peerId, 'reading');
  }

  /** PrepareRead, decoded; a grant whose answer can not be decoded is released at once (its pins go back). */
  async prepareRead(
    session: bigint,
    namespace: string,
    packed: Buffer,
    hashLen: number,
    deadlineMs: number,
    release: readonly GrantId[] = [],
  ): Promise<ReadGrant> {
    const releaseGrantIds = Buffer.from(release.join(''), 'hex');
    const res = await this.calls.grant(
      'prepareRead',
      { nodeId: this.opts.nodeId, session, namespace, hashes: { packed, hashLen }, releaseGrantIds },
      deadlineMs,
      `prepare-read from ${this.peerId}`,
    );
    try {
      return decodeReadGrant(res);
    } catch (err) {
      if (res.grantId.length === GRANT_ID_BYTES)
        this.releaseGrant(session, Buffer.from(res.grantId).toString('hex'), 2000).catch(() => {}); // else it expires on its own
      const e = err as Error;
      e.message = `peer ${this.peerId}: ${e.message}`;
      throw e;
    }
  }

  async releaseGrant(session: bigint, grantId: GrantId, deadlineMs: number): Promise<void> {
    await this.calls.grant(
      'releaseGrant',
      { nodeId: this.opts.nodeId, session, grantId: Buffer.from(grantId, 'hex') },
      deadlineMs,
      `release-grant to ${this.peerId}`,
    );
  }

  /** Half-closes the grant stream of a link without grant calls lately. */
  idle(): void {
    this.calls.retireIdle(GRANT_STREAM_IDLE_MS);
  }

  close(): void {
    this.calls.close(new KvError('TRANSPORT_UNAVAILABLE', `the link to ${this.peerId} was closed`));
    this.rpc.close();
    if (this.session !== undefined) this.opts.transport.dropPeer(this.peerId, 'reading');
    this.session = undefined;
  }

  private async handshake(deadlineMs: number): Promise<bigint> {
    const { transport, transportKind, nodeId, addr } = this.opts;
    const t0 = Date.now();
    try {
      const material = await transport.beginConnect(this.peerId);
      const res = await unaryCall<
        object,
        { nodeId: string; transport: TransportKind; material: Buffer; session: bigint }
      >(
        this.rpc,
        'handshake',
        { nodeId, addr, transport: transportKind, material },
        deadlineMs,
        `handshake with ${this.peerId}`,
      );
      if (res.nodeId !== this.peerId) {
        throw new KvError(
          'TRANSPORT_FAILED',
          `handshake with ${this.addr}: expected node ${this.peerId}, found ${res.nodeId} (restarted or moved)`,
        );
      }
      await transport.completeConnect(this.peerId, Buffer.from(res.material));
      this.session = res.session;
      this.calls.streamAgain();
      this.counters.handshakes++;
      return res.session;
    } catch (err) {
      this.counters.handshakeFailures++;
      transport.dropPeer(this.peerId, 'reading');
      const e = err instanceof KvError ? err : fromGrpcError(err);
      throw new KvError(e.code, `${e.message} (after ${Date.now() - t0} ms)`, { cause: err });
    }
  }
}

export class PeerLinks {
  private readonly links = new Map<string, PeerLink>();
  readonly counters = { handshakes: 0, handshakeFailures: 0 };

  constructor(private readonly opts: PeerLinksOptions) {}

  get(peerId: string, addr: string): PeerLink {
    let link = this.links.get(peerId);
    if (link && link.addr !== addr) {
      link.close();
      link = undefined;
    }
    if (!link) {
      link = new PeerLink(peerId, addr, this.opts, this.counters);
      this.links.set(peerId, link);
    }
    return link;
  }

  /** Closes links unused for `idleMs` (peers that left the cluster); half-closes the grant streams of idle ones. */
  prune(idleMs: number): void {
    const cutoff = Date.now() - idleMs;
    for (const [id, link] of this.links) {
      if (link.lastUsedMs < cutoff) {
        link.close();
        this.links.delete(id);
      } else link.idle();
    }
  }

  close(): void {
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }
}
