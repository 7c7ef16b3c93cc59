export { MetaStore, randomEpoch } from './store.js';
export type {
  MetaStoreOptions, Hashes, HeartbeatInput, HeartbeatResult, InsertResult, NodeRef, NodePrefixResult, NodeView,
  NamespaceView, StoreStats, SweepResult,
} from './store.js';
export { BlockTable } from './block-table.js';
export { hashBytes } from './hash.js';
export type { NodeStatsInput } from './sessions.js';
