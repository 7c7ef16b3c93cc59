// The metaserver's pipelined streams (QueryPrefixStream, UpdateBlocksStream): each is bound to the index serving
// when it opened and to the caller's identity; every message is one item answered like the unary call it stands
// for, or with a per-item error (the stream goes on). Guard, metrics, logging and error mapping happen in
// `pipelineStream()` from @kvfabric/common, per item as for unary calls.
import type * as grpc from '@grpc/grpc-js';
import type { LeaderInfo } from '@kvfabric/proto';
import { KvError, type Identity } from '@kvfabric/common';
import { pipelineStream, type RpcContext, type ServerSecurity, type StreamItems } from '@kvfabric/common/rpc';
import type { MetaStore } from './store/index.js';

export interface IndexStreamDeps {
  /** The index now serving (HA mode replaces it on every election). */
  store: () => MetaStore;
  /** Who serves as metaserver (single mode: this process). */
  leader: () => LeaderInfo;
  /** Who called (undefined on a plaintext server), namespace policy applied. */
  identify: ServerSecurity['identify'];
}

/** What a stream's items do, given the index it is bound to and who opened it (`check` is the binding's own). */
export type IndexStreamItems<Req, Res> = (
  store: MetaStore,
  who: Identity | undefined,
) => Omit<StreamItems<Req, Res>, 'check'>;

/** A stream answers from the index serving when it opened, for as long as that index serves. */
export function indexStreamHandler<Req, Res>(
  method: string,
  deps: IndexStreamDeps,
  ctx: RpcContext,
  items: IndexStreamItems<Req, Res>,
): grpc.handleBidiStreamingCall<Req, Res> {
  return (call) => {
    let who: Identity | undefined;
    try {
      who = deps.identify(call);
    } catch (err) {
      call.destroy(err as Error);
      return;
    }
    const store = deps.store();
    const epoch = store.epoch;
    pipelineStream<Req, Res>(
      method,
      {
        ...items(store, who),
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
    )(call);
  };
}
