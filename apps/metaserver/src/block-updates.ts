// InsertBlocks and RemoveBlocks against one index: validation (messages name the field), the caller's right to
// speak for the node and the namespace, the store call and the answer. The unary calls (metaserver-service.ts) and
// the items of UpdateBlocksStream (update-blocks-stream.ts) both answer through here. The field checks shared with
// the other calls (node id, namespace, hash list) live here too.
import type {
  HashList,
  InsertBlocksRequest,
  InsertBlocksResponse,
  RemoveBlocksRequest,
  RemoveBlocksResponse,
} from '@kvfabric/proto';
import {
  METASERVER_MAX_UPDATE_HASHES,
  authorizeNamespace,
  authorizeNode,
  checkHashList,
  checkId,
  checkNamespace,
  invalid,
  tierFromWire,
  type BlockTier,
  type Identity,
} from '@kvfabric/common';
import type { Hashes, MetaStore } from './store/index.js';

/** A node's own requests (heartbeat, unregister, insert, remove) must come from that node's certificate. */
export function nodeIdOf(req: { nodeId: string }, who: Identity | undefined): string {
  const nodeId = checkId(req.nodeId, 'node_id');
  authorizeNode(who, nodeId);
  return nodeId;
}

export function namespaceOf(req: { namespace: string }, who: Identity | undefined): string {
  const ns = checkNamespace(req.namespace);
  authorizeNamespace(who, ns);
  return ns;
}

/** A request's hash list, at most maxCount hashes (METASERVER_MAX_UPDATE_HASHES / METASERVER_MAX_QUERY_HASHES). */
export function hashesOf(list: HashList | undefined, maxCount: number): Hashes {
  return checkHashList(list, 'hashes', { maxCount });
}

/** The tier of an InsertBlocks request (UNSPECIFIED, from older nodes: DRAM). */
function tierOf(wire: number): BlockTier {
  const tier = tierFromWire(wire);
  if (tier === undefined) throw invalid('tier', 'expected BLOCK_TIER_UNSPECIFIED, _DRAM, _SSD or _BOTH', wire);
  return tier;
}

function pick(list: Hashes, indices: number[]): HashList {
  const packed = Buffer.allocUnsafe(indices.length * list.hashLen);
  indices.forEach((i, k) =>
    packed.set(list.packed.subarray(i * list.hashLen, (i + 1) * list.hashLen), k * list.hashLen),
  );
  return { packed, hashLen: list.hashLen };
}

export function insertBlocks(
  store: MetaStore,
  who: Identity | undefined,
  req: InsertBlocksRequest,
): InsertBlocksResponse {
  const nodeId = nodeIdOf(req, who);
  const ns = namespaceOf(req, who);
  const hashes = hashesOf(req.hashes, METASERVER_MAX_UPDATE_HASHES);
  const r = store.insert(nodeId, ns, hashes, tierOf(req.tier));
  return { epoch: store.epoch, inserted: BigInt(r.inserted), reclaimable: pick(hashes, r.reclaimable) };
}

export function removeBlocks(
  store: MetaStore,
  who: Identity | undefined,
  req: RemoveBlocksRequest,
): RemoveBlocksResponse {
  const nodeId = nodeIdOf(req, who);
  const ns = namespaceOf(req, who);
  const removed = store.remove(nodeId, ns, hashesOf(req.hashes, METASERVER_MAX_UPDATE_HASHES));
  return { epoch: store.epoch, removed: BigInt(removed) };
}
