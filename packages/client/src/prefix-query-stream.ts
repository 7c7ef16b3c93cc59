// Pipelined prefix queries: many QueryPrefix requests in flight on one QueryPrefixStream (a MetaserverStream, which
// says how the stream follows the leader and fails), answers matched by id.
import type { QueryPrefixStreamRequest, QueryPrefixStreamResponse } from '@kvfabric/proto/metaserver';
import { MetaserverWire } from '@kvfabric/proto/prefix-wire';
import { itemError, toHashList } from '@kvfabric/common';
import { MetaserverStream, type MetaserverStreamOptions } from './metaserver-stream.js';
import type { Hashes, PrefixResult } from './metaserver-client.js';

export type PrefixQueryStreamOptions = MetaserverStreamOptions;

export interface PrefixQueryOptions {
  /** The asking node, left out of the answer. */
  excludeNodeId?: string;
  deadlineMs?: number;
  signal?: AbortSignal;
}

const KIND = { method: MetaserverWire.queryPrefixStream, name: 'prefix query stream', call: 'prefix query' };

export class PrefixQueryStream extends MetaserverStream<QueryPrefixStreamRequest, QueryPrefixStreamResponse> {
  constructor(addr: string, opts: PrefixQueryStreamOptions = {}) {
    super(addr, KIND, opts);
  }

  /** For every live node holding hashes[0], the number of leading hashes it holds (QueryPrefix, pipelined). */
  async query(namespace: string, hashes: Hashes, opts: PrefixQueryOptions = {}): Promise<PrefixResult> {
    const list = toHashList(hashes);
    const excludeNodeId = opts.excludeNodeId ?? '';
    const res = await this.call((id) => ({ id, namespace, hashes: list, excludeNodeId }), opts);
    if (res.error) throw itemError(res.error);
    this.sawEpoch(res.epoch);
    return { epoch: res.epoch, nodes: res.nodes };
  }
}
