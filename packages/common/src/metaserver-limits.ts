// What one Metaserver RPC may carry, shared by the metaserver (which refuses anything larger, naming the field) and
// its clients (whose gRPC channels are sized to the same numbers). The message sizes follow from the field caps, so
// a limit is changed in one place.
import { MAX_HASH_BYTES } from './packed-hashes.js';
import { MAX_HOST_CHARS } from './validate.js';

/** Hashes in one InsertBlocks / RemoveBlocks (a node's reporter sends 4096 at a time). */
export const METASERVER_MAX_UPDATE_HASHES = 1 << 16;
/** Hashes in one QueryPrefix / QueryOwners (4M tokens at 16 tokens a block). */
export const METASERVER_MAX_QUERY_HASHES = 1 << 18;
/** A heartbeat's address: "[host]:65535". */
export const METASERVER_MAX_ADDR_CHARS = MAX_HOST_CHARS + 8;
/** Node sessions the index can tell apart (owner records store a 16-bit slot). */
export const METASERVER_MAX_NODES = 0xffff;

/** Room for everything in a request besides its hash list (namespace, ids, framing). */
const REQUEST_OVERHEAD_BYTES = 64 * 1024;
/** The most one node costs in a ListNodes or QueryPrefix answer: id, address, transports, stats, times, framing. */
const NODE_ANSWER_BYTES = 128 + METASERVER_MAX_ADDR_CHARS + 128;

/** The largest request: a QueryPrefix of the most hashes of the longest length. */
export const METASERVER_MAX_REQUEST_BYTES = METASERVER_MAX_QUERY_HASHES * MAX_HASH_BYTES + REQUEST_OVERHEAD_BYTES;
/**
 * The largest answer: every node in ListNodes (QueryPrefix lists fewer). A QueryOwners answer that would pass it is
 * refused by gRPC with RESOURCE_EXHAUSTED; ask for fewer hashes.
 */
export const METASERVER_MAX_RESPONSE_BYTES = METASERVER_MAX_NODES * NODE_ANSWER_BYTES + REQUEST_OVERHEAD_BYTES;
