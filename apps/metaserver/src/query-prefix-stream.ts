// The pipelined QueryPrefixStream: each request message is one QueryPrefix, answered with the same fields under the
// request's id (or a per-item error; the stream goes on).
import type { NodePrefix, QueryPrefixStreamRequest, QueryPrefixStreamResponse } from '@kvfabric/proto';
import {
  METASERVER_MAX_QUERY_HASHES,
  authorizeNamespace,
  checkHashList,
  checkId,
  checkNamespace,
} from '@kvfabric/common';
import type { IndexStreamItems } from './index-stream.js';

export const QUERY_PREFIX_STREAM = 'queryPrefixStream';

export const queryPrefixItems: IndexStreamItems<QueryPrefixStreamRequest, QueryPrefixStreamResponse> = (store, who) => {
  const epoch = store.epoch;
  return {
    answer(req) {
      const ns = checkNamespace(req.namespace);
      authorizeNamespace(who, ns);
      const hashes = checkHashList(req.hashes, 'hashes', { maxCount: METASERVER_MAX_QUERY_HASHES });
      const exclude = req.excludeNodeId === '' ? '' : checkId(req.excludeNodeId, 'exclude_node_id');
      // NodePrefixResult has exactly NodePrefix's fields (transports are validated TransportKind values)
      const nodes = store.queryPrefix(ns, hashes, exclude) as NodePrefix[];
      return { id: req.id, epoch, nodes, error: undefined };
    },
    itemError(req, err) {
      return { id: req.id, epoch: 0n, nodes: [], error: { code: err.code, message: err.message } };
    },
  };
};
