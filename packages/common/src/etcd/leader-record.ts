// The leader key's contract, shared by the metaserver replicas (apps/metaserver/src/ha, which write it) and by
// everything that follows the leader (packages/client's LeaderLocator, which reads it). Under the prefix P:
//   P/leader  {"addr":"10.0.0.5:50056","epoch":"4294967297","since_ms":1700000000000,"replica_id":"metaserver-0"}
//             attached to the leader's lease: it disappears when the leader resigns or its lease expires.
//   P/epoch   the sequence number of the last election (decimal), bumped in the same transaction that creates P/leader.
// An epoch is `seq << 24 | 24 random bits`: strictly increasing across elections, and still new to every node when an
// operator wipes etcd and the sequence starts over. Pure: no etcd client here (that is connect.ts).
import { randomInt } from 'node:crypto';
import { echo } from '../echo.js';
import { KvError } from '../errors.js';

export interface LeaderRecord {
  /** Address nodes and the CLI dial (the replica's --advertise-addr). */
  addr: string;
  epoch: bigint;
  /** Wall clock of the election, ms since the Unix epoch. */
  sinceMs: number;
  replicaId: string;
}

export const EPOCH_SEQ_SHIFT = 24n;

export function leaderKey(prefix: string): string {
  return `${normalizePrefix(prefix)}/leader`;
}

export function epochKey(prefix: string): string {
  return `${normalizePrefix(prefix)}/epoch`;
}

/** "/kvfabric/" and "kvfabric" both become "/kvfabric"; "/" becomes "". */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.trim().replace(/\/+$/, '');
  if (trimmed === '') return '';
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}

export function epochFor(seq: bigint): bigint {
  return (seq << EPOCH_SEQ_SHIFT) | BigInt(randomInt(1, 1 << 24));
}

/** The election sequence number inside an epoch (how many elections this prefix has seen). */
export function seqOf(epoch: bigint): bigint {
  return epoch >> EPOCH_SEQ_SHIFT;
}

export function encodeLeaderRecord(r: LeaderRecord): string {
  return JSON.stringify({ addr: r.addr, epoch: r.epoch.toString(), since_ms: r.sinceMs, replica_id: r.replicaId });
}

/**
 * Parses a leader key value. A value that is not a leader record names no usable leader: METASERVER_UNAVAILABLE,
 * the message naming the bad field.
 */
export function decodeLeaderRecord(text: string): LeaderRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new KvError('METASERVER_UNAVAILABLE', `leader key: expected JSON, got ${echo(text)}`);
  }
  const o = (raw ?? {}) as Record<string, unknown>;
  const bad = (field: string, expected: string) =>
    new KvError('METASERVER_UNAVAILABLE', `leader key: ${field}: expected ${expected}, got ${echo(o[field])}`);
  if (typeof o.addr !== 'string' || o.addr === '') throw bad('addr', 'host:port');
  if (typeof o.epoch !== 'string' || !/^[1-9][0-9]{0,19}$/.test(o.epoch)) throw bad('epoch', 'a decimal uint64');
  if (typeof o.since_ms !== 'number' || !Number.isSafeInteger(o.since_ms)) {
    throw bad('since_ms', 'ms since the Unix epoch');
  }
  if (typeof o.replica_id !== 'string') throw bad('replica_id', 'a string');
  return { addr: o.addr, epoch: BigInt(o.epoch), sinceMs: o.since_ms, replicaId: o.replica_id };
}
