// @kvfabric/node internals exported for tests and benches (nothing imports apps/* in production code).
export * from './engine-core.js';
export * from './block-index.js';
export * from './leases.js';
export * from './namespaces.js';
export * from './data-path.js';
export { NodeApp } from './app.js';
export { parseNodeConfig, NODE_FLAGS, type NodeConfig } from './config.js';
export { Reporter, DEFAULT_READVERTISE_BLOCKS_PER_SEC, type ReporterClient, type ReporterOptions } from './reporter.js';
export { openDrive } from './ssd/ssd-drives.js';
export { SsdCatalog } from './ssd/ssd-catalog.js';
export { encodeRecord, type SsdPut } from './ssd/journal-codec.js';
