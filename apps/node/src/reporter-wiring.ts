// The node's reporter as the app builds it: heartbeats (unary calls) with the pool's occupancy; inserts and removes
// on one UpdateBlocksStream; every sealed block of the index and every block on SSD, packed per namespace and tier
// (resident-tiers.ts), when the metaserver asks for a re-advertisement.
import type { TransportKind } from '@kvfabric/proto';
import type { Logger } from '@kvfabric/common/observability';
import type { BlockUpdateStream, MetaserverClient } from '@kvfabric/client';
import type { BlockIndex } from './block-index.js';
import type { NodeConfig } from './config.js';
import type { PagePool } from './data-path.js';
import type { NamespaceRegistry } from './namespaces.js';
import { Reporter } from './reporter.js';
import { residentTiers, type SsdHolding } from './resident-tiers.js';

export interface ReporterParts {
  config: NodeConfig;
  /** Heartbeats, unregister and leader changes. */
  client: MetaserverClient;
  /** Inserts and removes, pipelined on one stream. */
  updates: BlockUpdateStream;
  nodeId: string;
  transport: TransportKind;
  pool: PagePool;
  index: BlockIndex;
  namespaces: NamespaceRegistry;
  logger: Logger;
  /** The SSD tier, when there is one: its blocks count as resident too, its bytes go with each heartbeat. */
  ssd?: () => (SsdHolding & { capacityBytes: number; usedBytes: number }) | undefined;
}

export function reporterFor(p: ReporterParts): Reporter {
  const { config, index, namespaces, client, updates } = p;
  return new Reporter({
    client: {
      heartbeat: (input) => client.heartbeat(input),
      unregister: (nodeId) => client.unregister(nodeId),
      onLeaderChange: (listener) => client.onLeaderChange(listener),
      insertBlocks: (nodeId, ns, hashes, opts) => updates.insertBlocks(nodeId, ns, hashes, opts),
      removeBlocks: (nodeId, ns, hashes) => updates.removeBlocks(nodeId, ns, hashes),
    },
    nodeId: p.nodeId,
    addr: config.addr,
    transports: [p.transport],
    heartbeatMs: config.heartbeatIntervalSecs * 1000,
    readvertiseBlocksPerSec: config.readvertiseBlocksPerSec,
    stats: () => {
      const s = p.pool.stats();
      const ssd = p.ssd?.();
      return {
        poolCapacityBytes: s.capacityBytes,
        poolUsedBytes: s.usedBytes,
        blocks: index.stats().sealed,
        ssdCapacityBytes: ssd?.capacityBytes ?? 0,
        ssdUsedBytes: ssd?.usedBytes ?? 0,
      };
    },
    resident: () => residentTiers(index, namespaces, p.ssd?.()),
    logger: p.logger.child({ component: 'reporter' }),
  });
}
