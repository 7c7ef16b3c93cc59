// How a pull session ends, as the fetcher sees it: the leading blocks sealed, the failure that stopped it (a reason
// for the metrics and a KvError for the logs), or the shortfalls that ended it early without failing. Also the
// error a chunk whose pages differ from their checksums ends the session with.
import { KvError, toKvError } from '@kvfabric/common';
import { PullError, reasonOf, type PullFailure } from './pull-types.js';

export interface PullOutcome {
  /** Leading blocks of [from, to) sealed. */
  sealed: number;
  /** Why the pull failed, when it did. */
  failure?: { reason: PullFailure; error: KvError };
  /** Why it ended short without failing (a holder with fewer blocks than listed, a full pool). */
  shortfalls: PullFailure[];
}

/** Where a pull failed (its failure reason depends on it: a timeout at handshake is an unreachable peer). */
export type PullStage = 'handshake' | 'prepare' | 'read';

/** The outcome of a pull that failed at `stage` with `error` after sealing `sealed` leading blocks. */
export function failedPull(sealed: number, error: unknown, stage: PullStage): PullOutcome {
  const e = toKvError(error);
  return {
    sealed,
    failure: { reason: reasonOf(error, stage), error: new KvError(e.code, e.message, { cause: error }) },
    shortfalls: [],
  };
}

/**
 * The error of a chunk of `pages` pages (blocks [first, ...) of the query, `shards` pages each) read from `peer`
 * under `grant`, whose bytes arrived but whose pages `mismatches` (ascending indexes) differ from their checksums,
 * and how many blocks those pages damaged.
 */
export function checksumMismatch(
  peer: string,
  grant: string,
  first: number,
  pages: number,
  shards: number,
  mismatches: Uint32Array,
): { error: PullError; blocks: number } {
  let blocks = 0;
  for (let i = 0, last = -1; i < mismatches.length; i++) {
    const b = Math.floor(mismatches[i]! / shards);
    if (b !== last) blocks++;
    last = b;
  }
  const at = first + Math.floor(mismatches[0]! / shards);
  const error = new PullError(
    'checksum_mismatch',
    `${mismatches.length} of ${pages} pages read from ${peer} under grant ${grant} differ from their checksums (${blocks} blocks, the first block ${at} of the query); the chunk's ${pages / shards} blocks are dropped`,
  );
  return { error, blocks };
}
