// What one Peer RPC may carry, shared by the serving side (the Peer gRPC server on --addr) and the reading side (its
// clients in fetch/peer-links.ts, and the puller that sizes its grant windows). Message sizes follow from the field
// caps: a PrepareRead names at most PEER_MAX_READ_HASHES hashes, and its answer carries one page offset per granted
// page (blocks x shards) plus, over verbs, the grant's memory windows.
import { MAX_HASH_BYTES } from '@kvfabric/common';
import { MAX_GRANT_WINDOWS } from '@kvfabric/native';
import { MAX_TP_SIZE } from '../namespaces.js';

/** Hashes in one PrepareRead (a grant window of the puller is never larger). */
export const PEER_MAX_READ_HASHES = 1 << 16;

/** Grants one PrepareRead may release (`release_grant_ids`): a puller holds at most two windows of a session. */
export const PEER_MAX_RELEASE_GRANTS = 64;

/** Room for everything besides the lists (ids, namespace, handshake material, framing). */
const OVERHEAD_BYTES = 64 * 1024;
/** A verbs grant key: version, mode, count, then per window offset, length, rkey and QP (native/lib/verbs-grant.ts). */
const GRANT_KEY_MAX_BYTES = 6 + MAX_GRANT_WINDOWS * (8 + 8 + 4 + 2);

/** The largest request: a PrepareRead of the most hashes of the longest length. */
export const PEER_MAX_REQUEST_BYTES = PEER_MAX_READ_HASHES * MAX_HASH_BYTES + OVERHEAD_BYTES;
/** The largest answer: a grant of every hash asked for, every shard a page, with its verbs key. */
export const PEER_MAX_RESPONSE_BYTES = PEER_MAX_READ_HASHES * MAX_TP_SIZE * 8 + GRANT_KEY_MAX_BYTES + OVERHEAD_BYTES;
