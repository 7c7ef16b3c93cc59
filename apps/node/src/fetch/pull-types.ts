// What the remote fetcher, its pull sessions and the read pipeline share: failure reasons, the holder directory and
// peer link interfaces (PeerLink and the metaserver in production, fakes in unit tests), a decoded read grant, and
// one fetch's request.
import { toKvError } from '@kvfabric/common';
import type { GrantId } from '@kvfabric/native';
import type { NamespaceInfo } from '../namespaces.js';

export const PULL_FAILURES = [
  'metaserver_unavailable',
  'peer_unreachable',
  'handshake_failed',
  'short_grant',
  'layout_mismatch',
  'grant_refused',
  'grant_expired',
  'transport_failed',
  'transport_timeout',
  'checksum_mismatch',
  'pool_exhausted',
  'deadline',
  'internal',
] as const;
export type PullFailure = (typeof PULL_FAILURES)[number];

export interface Holder {
  nodeId: string;
  addr: string;
  prefixLen: number;
  poolUsedBytes: number;
}

/** Where holders are found: the metaserver's QueryPrefix, excluding this node. */
export interface HolderDirectory {
  /** False while the metaserver is known to be down (no deadline is waited out then). */
  up(): boolean;
  holders(namespace: string, packed: Buffer, hashLen: number, deadlineMs: number): Promise<Holder[]>;
}

/** A PrepareRead answer, decoded by the link: what the reader may read under one grant. */
export interface ReadGrant {
  /** Empty when nothing was granted (`blocks` 0). */
  id: GrantId | '';
  /** Leading blocks granted (fewer than asked: the holder has no more). */
  blocks: number;
  shards: number;
  pageBytes: number;
  /** blocks × shards remote page offsets, block-major. */
  remote: Float64Array;
  /** The holder's checksum of every page, (low, high) pairs in the order of `remote`: what a landed page must match. */
  checksums: Uint32Array;
  expiresAtMs: number;
  /** The serving transport's key for this grant (verbs: memory windows); passed to every readv under it. */
  key: Buffer;
  /** The holder's --grant-pin-budget in bytes (0: none): the reader's windows grow up to a share of it. */
  pinBudgetBytes: number;
}

/** A connection to one serving peer (PeerLink in production; fakes in unit tests). */
export interface Link {
  ready(deadlineMs: number): Promise<bigint>;
  invalidate(session: bigint): void;
  /** PrepareRead; it first releases `release`, grants of `session` the reader is done with. */
  prepareRead(
    session: bigint,
    namespace: string,
    packed: Buffer,
    hashLen: number,
    deadlineMs: number,
    release?: readonly GrantId[],
  ): Promise<ReadGrant>;
  /** Ends a grant this reader was given under `session`. */
  releaseGrant(session: bigint, grantId: GrantId, deadlineMs: number): Promise<void>;
}

export interface LinkSource {
  get(peerId: string, addr: string): Link;
}

export class PullError extends Error {
  constructor(
    readonly reason: PullFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The failure reason of an error thrown at `stage` of a pull. */
export function reasonOf(err: unknown, stage: 'handshake' | 'prepare' | 'read'): PullFailure {
  if (err instanceof PullError) return err.reason;
  const { code, message } = toKvError(err);
  if (code === 'GRANT_REFUSED' && /expired/.test(message)) return 'grant_expired';
  if (code === 'TRANSPORT_TIMEOUT') return stage === 'read' ? 'transport_timeout' : 'peer_unreachable';
  if (code === 'TRANSPORT_UNAVAILABLE') return stage === 'handshake' ? 'handshake_failed' : 'peer_unreachable';
  if (code === 'GRANT_REFUSED' || code === 'GRANT_UNKNOWN' || code === 'PEER_LIMIT_REACHED') return 'grant_refused';
  if (code === 'TRANSPORT_FAILED') return stage === 'handshake' ? 'handshake_failed' : 'transport_failed';
  if (code === 'POOL_EXHAUSTED') return 'pool_exhausted';
  return stage === 'handshake' ? 'handshake_failed' : 'internal';
}

/** One fetch: the request's hashes and its deadline. */
export class PullRequest {
  constructor(
    readonly ns: NamespaceInfo,
    readonly packed: Buffer,
    readonly hashLen: number,
    /** Blocks (hashes) in the request. */
    readonly count: number,
    readonly deadlineAtMs: number,
  ) {}

  /** The packed hashes of blocks [from, to). */
  hashes(from: number, to: number): Buffer {
    return this.packed.subarray(from * this.hashLen, to * this.hashLen);
  }

  /** Milliseconds left until the deadline, at least 1 and at most `capMs` (an RPC's deadline). */
  timeLeft(capMs: number): number {
    return Math.max(1, Math.min(capMs, this.deadlineAtMs - Date.now()));
  }

  get overdue(): boolean {
    return Date.now() >= this.deadlineAtMs;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
