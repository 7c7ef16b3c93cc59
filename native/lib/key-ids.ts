// Dense ids for (tag, hash) keys in native memory (src/key_ids_js.cc over src/key_table.h). A caller keeps whatever
// it knows per key in arrays indexed by the id, so a content-addressed table needs neither a string key nor a map
// entry per block on the V8 heap, and a packed run of hashes is looked up or added in one call. Ids are small,
// dense and reused after `remove`.
import { binding } from './loader.js';

export interface KeyIds {
  /**
   * Looks up hashes [at, at + count) of `packed` under `tag`: out[k] is the id of hash at + k, or -1. Returns how
   * many were present.
   */
  find(tag: number, packed: Uint8Array, hashLen: number, at: number, count: number, out: Int32Array): number;
  /** Like `find`, but an absent hash gets a new id (a hash repeated in the run gets one). Returns how many were new. */
  intern(tag: number, packed: Uint8Array, hashLen: number, at: number, count: number, out: Int32Array): number;
  /** Forgets the key of `id` (its id may be handed out again); false when `id` was not live. */
  remove(id: number): boolean;
  /**
   * Copies the keys of ids[0, count) back to back into `out` (`hashLen` bytes each); returns the bytes written. Every
   * id must be live with a key of `hashLen` bytes (checked before anything is written).
   */
  copyKeys(ids: Int32Array, count: number, hashLen: number, out: Uint8Array): number;
  /** Keys held. */
  size(): number;
}

/** A new, empty id table. Its methods check their arguments natively (INVALID_ARGUMENT naming the field). */
export function createKeyIds(): KeyIds {
  return new (binding().KeyIds as new () => KeyIds)();
}
