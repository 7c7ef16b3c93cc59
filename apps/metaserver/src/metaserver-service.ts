// The gRPC adapter of the Metaserver service: decode, validate (messages name the field), call the store, build the
// answer. Timing, metrics, logging and error mapping happen once, in `implement()` from @kvfabric/common.
import type * as grpc from '@grpc/grpc-js';
import { MetaserverService, NodeState, TransportKind, type NodeStats } from '@kvfabric/proto';
import { METASERVER_MAX_QUERY_HASHES, invalid, parseHostPort, tierToWire } from '@kvfabric/common';
import { implement, type RpcContext } from '@kvfabric/common/rpc';
import { type Logger } from '@kvfabric/common/observability';
import { hashesOf, insertBlocks, namespaceOf, nodeIdOf, removeBlocks } from './block-updates.js';
import { indexStreamHandler, type IndexStreamDeps } from './index-stream.js';
import { QUERY_PREFIX_STREAM, queryPrefix, queryPrefixItems } from './query-prefix-stream.js';
import { UPDATE_BLOCKS_STREAM, updateBlocksItems } from './update-blocks-stream.js';

export interface MetaserverServiceDeps extends IndexStreamDeps {
  logger: Logger;
  /** HA mode: leader changes in the cluster (GetStats.leader_changes). */
  leaderChanges?: () => bigint;
}

const KNOWN_TRANSPORTS = new Set<number>([TransportKind.TRANSPORT_KIND_TCP, TransportKind.TRANSPORT_KIND_VERBS]);

/** Each known kind at most once (a node offers tcp, verbs, or both). */
function transportsOf(transports: TransportKind[]): TransportKind[] {
  if (transports.length > KNOWN_TRANSPORTS.size)
    throw invalid('transports', `expected at most ${KNOWN_TRANSPORTS.size} transport kinds`, transports.length);
  transports.forEach((t, i) => {
    if (!KNOWN_TRANSPORTS.has(t))
      throw invalid(`transports[${i}]`, 'expected TRANSPORT_KIND_TCP or TRANSPORT_KIND_VERBS', t);
    if (transports.indexOf(t) !== i) throw invalid(`transports[${i}]`, 'expected each kind once', t);
  });
  return transports;
}

function nodeStatsOf(stats: NodeStats | undefined): NodeStats {
  const s = stats ?? { poolCapacityBytes: 0n, poolUsedBytes: 0n, blocks: 0n, ssdCapacityBytes: 0n, ssdUsedBytes: 0n };
  if (s.poolUsedBytes > s.poolCapacityBytes) {
    throw invalid(
      'stats.pool_used_bytes',
      `expected at most stats.pool_capacity_bytes (${s.poolCapacityBytes})`,
      s.poolUsedBytes.toString(),
    );
  }
  if (s.ssdUsedBytes > s.ssdCapacityBytes) {
    throw invalid(
      'stats.ssd_used_bytes',
      `expected at most stats.ssd_capacity_bytes (${s.ssdCapacityBytes})`,
      s.ssdUsedBytes.toString(),
    );
  }
  return s;
}

function peerAddr(addr: string): string {
  const { port } = parseHostPort(addr, 'addr');
  if (port === 0) throw invalid('addr', 'expected a routable host:port with a port 1..65535', addr);
  return addr;
}

/** Each call is answered by the index serving when it arrives (deps.store()), under that index's epoch. */
export function metaserverServiceImpl(deps: MetaserverServiceDeps, ctx: RpcContext): grpc.UntypedServiceImplementation {
  const { logger } = deps;
  return implement(
    MetaserverService,
    {
      heartbeat(req, call) {
        const store = deps.store();
        const nodeId = nodeIdOf(req, deps.identify(call));
        const addr = peerAddr(req.addr);
        const transports = transportsOf(req.transports);
        const stats = nodeStatsOf(req.stats);
        const r = store.heartbeat({ nodeId, addr, transports, stats });
        if (r.replaced)
          logger.warn({ node: nodeId, addr, replaced: r.replaced }, 'node took over the address of a stale session');
        if (r.registered) logger.info({ node: nodeId, addr }, 'node registered');
        return { epoch: store.epoch, registered: r.registered, nodeStaleSecs: Math.ceil(store.nodeStaleMs / 1000) };
      },

      unregister(req, call) {
        const store = deps.store();
        const nodeId = nodeIdOf(req, deps.identify(call));
        const removed = store.unregister(nodeId);
        logger.info({ node: nodeId, removed }, 'node unregistered');
        return { epoch: store.epoch, removed: BigInt(removed) };
      },

      insertBlocks: (req, call) => insertBlocks(deps.store(), deps.identify(call), req),

      removeBlocks: (req, call) => removeBlocks(deps.store(), deps.identify(call), req),

      updateBlocksStream: indexStreamHandler(
        UPDATE_BLOCKS_STREAM,
        deps,
        ctx,
        updateBlocksItems,
      ) as grpc.UntypedHandleCall,

      queryPrefix(req, call) {
        const store = deps.store();
        return { epoch: store.epoch, nodes: queryPrefix(store, deps.identify(call), req) };
      },

      queryPrefixStream: indexStreamHandler(QUERY_PREFIX_STREAM, deps, ctx, queryPrefixItems) as grpc.UntypedHandleCall,

      queryOwners(req, call) {
        const store = deps.store();
        const ns = namespaceOf(req, deps.identify(call));
        const owners = store.queryOwners(ns, hashesOf(req.hashes, METASERVER_MAX_QUERY_HASHES));
        return {
          epoch: store.epoch,
          blocks: owners.map((list) => ({
            nodeIds: list.map((o) => o.nodeId),
            addrs: list.map((o) => o.addr),
            tiers: list.map((o) => tierToWire(o.tier)),
          })),
        };
      },

      listNodes() {
        const store = deps.store();
        const nodes = store.listNodes().map((n) => ({
          nodeId: n.nodeId,
          addr: n.addr,
          state: n.state === 'live' ? NodeState.NODE_STATE_LIVE : NodeState.NODE_STATE_STALE,
          transports: n.transports as TransportKind[],
          stats: n.stats,
          indexedBlocks: BigInt(n.indexedBlocks),
          registeredAtMs: BigInt(n.registeredAtMs),
          lastHeartbeatMs: BigInt(n.lastHeartbeatMs),
        }));
        return { epoch: store.epoch, nodes, leader: deps.leader() };
      },

      listNamespaces(_req, call) {
        const store = deps.store();
        const allowed = deps.identify(call)?.namespaces ?? 'all';
        const namespaces = store
          .listNamespaces()
          .filter((n) => allowed === 'all' || allowed.has(n.name))
          .map((n) => ({ name: n.name, blocks: BigInt(n.blocks), owners: BigInt(n.owners) }));
        return { epoch: store.epoch, namespaces };
      },

      getStats() {
        const store = deps.store();
        const s = store.stats();
        return {
          epoch: store.epoch,
          startedAtMs: BigInt(s.startedAtMs),
          blocks: BigInt(s.blocks),
          owners: BigInt(s.owners),
          namespaces: BigInt(s.namespaces),
          liveNodes: BigInt(s.liveNodes),
          staleNodes: BigInt(s.staleNodes),
          indexBytes: BigInt(s.indexBytes),
          leader: deps.leader(),
          leaderChanges: deps.leaderChanges?.() ?? 0n,
        };
      },
    },
    ctx,
  );
}
