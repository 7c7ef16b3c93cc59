// The pipelined QueryPrefixStream: each request message is one QueryPrefix, answered with the same fields under the
// request's id (or a per-item error; the stream goes on). Guard, metrics, logging and error mapping happen in
// `pipelineStream()` from @kvfabric/common, per message as for unary calls.
import type * as grpc from '@grpc/grpc-js';
import type { LeaderInfo, NodePrefix, QueryPrefixStreamRequest, QueryPrefixStreamResponse } from '@kvfabric/proto';
import {
  KvError,
  METASERVER_MAX_QUERY_HASHES,
  authorizeNamespace,
  checkHashList,
  checkId,
  checkNamespace,
  type Identity,
} from '@kvfabric/common';
import { pipelineStream, type RpcContext, type ServerSecurity } from '@kvfabric/common/rpc';
import type { MetaStore } from './store/index.js';

export const QUERY_PREFIX_STREAM = 'queryPrefixStream';

export interface QueryPrefixStreamDeps {
  /** The index now serving (HA mode replaces it on every election). */
  store: () => MetaStore;
  /** Who serves as metaserver (single mode: this process). */
  leader: () => LeaderInfo;
  /** Who called (undefined on a plaintext server), namespace policy applied. */
  identify: ServerSecurity['identify'];
}

type Handler = grpc.handleBidiStreamingCall<QueryPrefixStreamRequest, QueryPrefixStreamResponse>;

/** A stream answers from the index serving when it opened, for as long as that index serves. */
export function queryPrefixStreamHandler(deps: QueryPrefixStreamDeps, ctx: RpcContext): Handler {
  return (call) => {
    let who: Identity | undefined;
    try {
      who = deps.identify(call);
    } catch (err) {
      call.destroy(err as Error);
      return;
    }
    streamOn(deps.store(), who, deps, ctx)(call);
  };
}

function streamOn(store: MetaStore, who: Identity | undefined, deps: QueryPrefixStreamDeps, ctx: RpcContext): Handler {
  const epoch = store.epoch;
  return pipelineStream<QueryPrefixStreamRequest, QueryPrefixStreamResponse>(
    QUERY_PREFIX_STREAM,
    {
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
      // HA: a stream lives across RPCs; when this replica lost and regained leadership in between, its index
      // (and epoch) were replaced and this stream's store is no one's index any more: the client reopens.
      check() {
        const leading = deps.leader().epoch;
        if (leading !== epoch) {
          throw new KvError(
            'METASERVER_UNAVAILABLE',
            `index epoch ${epoch} was replaced (now ${leading}); reopen the stream`,
          );
        }
      },
    },
    ctx,
  );
}
