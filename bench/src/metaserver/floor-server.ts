// The unary floor of the metaserver bench: the metaserver's own unary QueryPrefix RPC (same service definition and
// hand-written wire codec, same server options, same node flags: scenarios/metaserver.ts forks it with IPC) answered
// with a fixed two-node answer the size of a real one, without the store and without the kvfabric RPC wrapper
// (metrics, error mapping, namespace policy). The same client processes query it as they query the metaserver, so
// its queries/s, CPU per query and collector pauses are what grpc-js unary calls cost on this host: the bound a unary
// QueryPrefix cannot beat, whatever the metaserver does.
import * as grpc from '@grpc/grpc-js';
import { METASERVER_MAX_REQUEST_BYTES, METASERVER_MAX_RESPONSE_BYTES } from '@kvfabric/common';
import { Metrics, observeGcPauses, type GcPause } from '@kvfabric/common/observability';
import { CHANNEL_OPTIONS, bindServer, idleServerOptions, messageSizeOptions } from '@kvfabric/common/rpc';
import type { NodePrefix, QueryPrefixResponse } from '@kvfabric/proto/metaserver';
import { MetaserverWire } from '@kvfabric/proto/prefix-wire';
import { CHAIN_BLOCKS, nodeId } from './data.js';

export type ToFloor = { kind: 'pauses'; sinceMs: number; untilMs: number };
export type FromFloor = { kind: 'ready'; port: number } | { kind: 'pauses'; pauses: GcPause[]; complete: boolean };

const node = (n: number, prefixLen: number): NodePrefix => ({
  nodeId: nodeId(n),
  addr: `127.0.0.1:${20000 + n}`,
  prefixLen,
  transports: [1],
  poolUsedBytes: 0n,
  poolCapacityBytes: 0n,
  ssdBlocks: 0,
});
const ANSWER: QueryPrefixResponse = { epoch: 1n, nodes: [node(0, CHAIN_BLOCKS), node(1, CHAIN_BLOCKS / 2)] };

// Every collector pause, logged exactly as the metaserver logs its own (GET /debug/gc-pauses there, IPC here).
const gc = observeGcPauses(new Metrics('kvfabric-bench-floor'), 'bench_floor');

const server = new grpc.Server({
  ...CHANNEL_OPTIONS,
  ...messageSizeOptions(METASERVER_MAX_REQUEST_BYTES, METASERVER_MAX_RESPONSE_BYTES),
  ...idleServerOptions(300_000),
});
const queryPrefix: grpc.handleUnaryCall<unknown, QueryPrefixResponse> = (_call, callback) => callback(null, ANSWER);
server.addService({ queryPrefix: MetaserverWire.queryPrefix }, { queryPrefix });
const port = await bindServer(server, '127.0.0.1:0');
process.on('message', (m: ToFloor) => {
  process.send!({ kind: 'pauses', ...gc.log.between(m.sinceMs, m.untilMs) } satisfies FromFloor);
});
process.on('disconnect', () => server.forceShutdown());
process.send!({ kind: 'ready', port } satisfies FromFloor);
