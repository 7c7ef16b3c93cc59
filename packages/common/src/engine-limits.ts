// What one engine API call may carry, shared by the node (which refuses anything larger, naming the field) and the
// engine SDK (whose gRPC channel is sized to the same numbers). The message sizes follow from the field caps, so a
// limit is changed in one place.
import { MAX_HASH_BYTES } from './packed-hashes.js';

/** Blocks (hashes, block ids) in one Save, Query or Load: 4M tokens at 16 tokens a block; 64 is typical. */
export const ENGINE_MAX_CALL_BLOCKS = 1 << 18;

/** Room for everything in a message besides its per-block fields (ids, a registration's geometry, framing). */
const OVERHEAD_BYTES = 128 * 1024;

/** The largest request: a Save of the most blocks, each a hash of the longest length and a 4-byte block id. */
export const ENGINE_MAX_REQUEST_BYTES = ENGINE_MAX_CALL_BLOCKS * (MAX_HASH_BYTES + 4) + OVERHEAD_BYTES;
/** The largest answer: a Save's outcomes, one byte a block. */
export const ENGINE_MAX_RESPONSE_BYTES = ENGINE_MAX_CALL_BLOCKS + OVERHEAD_BYTES;
