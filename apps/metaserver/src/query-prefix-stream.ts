// The pipelined QueryPrefixStream: each request message is one QueryPrefix, answered with the same fields under the
// request's id (or a per-item error; the stream goes on).
import type {
  NodePrefix,
  QueryPrefixRequest,
  QueryPrefixStreamRequest,
  QueryPrefixStreamResponse,
} from '@kvfabric/proto';
import { METASERVER_MAX_QUERY_HASHES, checkId, type Identity } from '@kvfabric/common';
import { hashesOf, namespaceOf } from './block-updates.js';
import type { IndexStreamItems } from './index-stream.js';
import type { MetaStore } from './store/index.js';

export const QUERY_PREFIX_STREAM = 'queryPrefixStream';

/** One QueryPrefix against `store` (a unary call's or a stream item's): validated, authorized, answered. */
export function queryPrefix(store: MetaStore, who: Identity | undefined, req: QueryPrefixRequest): NodePrefix[] {
  const ns = namespaceOf(req, who);
  const hashes = hashesOf(req.hashes, METASERVER_MAX_QUERY_HASHES);
  const exclude = req.excludeNodeId === '' ? '' : checkId(req.excludeNodeId, 'exclude_node_id');
  // NodePrefixResult has exactly NodePrefix's fields (transports are validated TransportKind values)
  return store.queryPrefix(ns, hashes, exclude) as NodePrefix[];
}

export const queryPrefixItems: IndexStreamItems<QueryPrefixStreamRequest, QueryPrefixStreamResponse> = (store, who) => {
  const epoch = store.epoch;
  return {
    answer(req) {
      return { id: req.id, epoch, nodes: queryPrefix(store, who, req), error: undefined };
    },
    itemError(req, err) {
      return { id: req.id, epoch: 0n, nodes: [], error: { code: err.code, message: err.message } };
    },
  };
};
