// @kvfabric/native: the data path. Memory pool, engine regions, copy engine, and one-sided read transports.
export { binding } from './loader.js';
export * from './pool.js';
export * from './region.js';
export * from './region-handover.js';
export * from './copy-engine.js';
export * from './checksum.js';
export * from './transport.js';
export * from './tcp-transport.js';
export * from './verbs-transport.js';
export * from './tcp-wire.js';
export * from './block-index.js';
export * from './lease-table.js';
export * from './engine-ops.js';
export * from './engine-ring.js';
export * from './cuda-ipc-region.js';
export * from './ssd-file.js';
export * from './pull-ops.js';
export * from './flight-table.js';
