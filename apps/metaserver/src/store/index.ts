export { MetaStore, randomEpoch } from './store.js';
export type {
  MetaStoreOptions,
  Hashes,
  HeartbeatInput,
  HeartbeatResult,
  InsertResult,
  NodeRef,
  BlockOwner,
  NodePrefixResult,
  NodeView,
  NamespaceView,
  NodeStatsInput,
  StoreStats,
  SweepResult,
  IndexLimits,
} from './types.js';
export { BlockTable } from './block-table.js';
