// What the remote fetcher and its read pipeline share: failure reasons, the holder directory and peer link
// interfaces (PeerLink and the metaserver in production, fakes in unit tests), and one pull's state.
import { toKvError } from '@kvfabric/common';
import type { PrepareReadResponse } from '@kvfabric/proto';
import type { NamespaceInfo } from '../namespaces.js';

export const PULL_FAILURES = [
  'metaserver_unavailable', 'peer_unreachable', 'handshake_failed', 'short_grant', 'layout_mismatch', 'grant_refused', 'grant_expired',
  'transport_failed', 'transport_timeout', 'pool_exhausted', 'deadline', 'internal',
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

/** A connection to one serving peer (PeerLink in production; fakes in unit tests). */
export interface Link {
  ready(deadlineMs: number): Promise<bigint>;
  invalidate(session: bigint): void;
  prepareRead(session: bigint, namespace: string, packed: Buffer, hashLen: number, deadlineMs: number): Promise<PrepareReadResponse>;
  releaseGrant(grantId: bigint, deadlineMs: number): Promise<void>;
}

export interface LinkSource {
  get(peerId: string, addr: string): Link;
}

export class PullError extends Error {
  constructor(readonly reason: PullFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export function reasonOf(err: unknown, stage: 'handshake' | 'prepare' | 'read'): PullFailure {
  if (err instanceof PullError) return err.reason;
  const { code, message } = toKvError(err);
  if (code === 'GRANT_REFUSED' && /expired/.test(message)) return 'grant_expired';
  if (code === 'TRANSPORT_TIMEOUT') return stage === 'read' ? 'transport_timeout' : 'peer_unreachable';
  if (code === 'TRANSPORT_UNAVAILABLE') return stage === 'handshake' ? 'handshake_failed' : 'peer_unreachable';
  if (code === 'GRANT_REFUSED' || code === 'GRANT_UNKNOWN') return 'grant_refused';
  if (code === 'TRANSPORT_FAILED') return stage === 'handshake' ? 'handshake_failed' : 'transport_failed';
  if (code === 'POOL_EXHAUSTED') return 'pool_exhausted';
  return stage === 'handshake' ? 'handshake_failed' : 'internal';
}

/** One fetch: the request's hashes and deadline. */
export interface Req {
  ns: NamespaceInfo;
  packed: Buffer;
  hashLen: number;
  deadline: number;
  /** Index keys (latin1 strings of the hashes), made once per block and fetch. */
  keys: (string | undefined)[];
}

export interface Granted {
  id: bigint;
  /** Leading blocks granted (fewer than asked: the holder has no more). */
  blocks: number;
  remote: Float64Array;
  untilMs: number;
  /** The serving transport's key for this grant (verbs: memory windows); passed to every readv under it. */
  key: Buffer;
}

/** One PrepareRead of a pull, for blocks [at, at + asked) of the request. */
export interface Window {
  at: number;
  asked: number;
  grant: Promise<Granted>;
  /** The window after this one (used only once this one was granted in full). */
  next?: Window;
}

/** One pull from one holder: its link, the session (renewed on SESSION_UNKNOWN), every window asked for. */
export interface PullCtx {
  link: Link;
  session: bigint;
  windows: Window[];
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function keyOf(req: Req, i: number): string {
  return (req.keys[i] ??= req.packed.toString('latin1', i * req.hashLen, (i + 1) * req.hashLen));
}
