// Single flight for remote pulls in native memory (src/flight_table.h): per (namespace, block hash), the pull that
// claims a block fetches it and every other fetch that needs it meanwhile waits for that pull's outcome. Claims are
// made and ended a run of hashes at a time, one call each; nothing per block lives on the V8 heap. A claim someone
// waits on is marked, and ending it reports its position, so the waiters (kept by the caller) can be told.
import type { BlockIndex } from './block-index.js';
import { binding } from './loader.js';

export interface FlightTable {
  /**
   * Claims hashes [at, at + count) of `packed` in order, stopping at the first that `index` holds (sealed or not)
   * or that is claimed already; returns how many were claimed.
   */
  claimRun(index: BlockIndex, ns: number, packed: Uint8Array, hashLen: number, at: number, count: number): number;
  /** Whether hash `at` of `packed` is claimed; if so, ending its claim reports it (endRun). */
  wait(ns: number, packed: Uint8Array, hashLen: number, at: number): boolean;
  /** Ends the claims among hashes [at, at + count) (the others are skipped); returns the positions waited on. */
  endRun(ns: number, packed: Uint8Array, hashLen: number, at: number, count: number): Uint32Array;
  /** Claims held. */
  size(): number;
}

/** A new, empty flight table. Its methods check their arguments natively (INVALID_ARGUMENT naming the field). */
export function createFlightTable(): FlightTable {
  return new (binding().FlightTable as new () => FlightTable)();
}
