// @kvfabric/common: the pure vocabulary every package shares (errors, flags and config, sizes, validation, hash
// lists, block hashing). It imports no I/O library; adapters take what they need from the subpaths
// @kvfabric/common/rpc (gRPC), /observability (logs, metrics, HTTP, signals) and /etcd.
export * from './errors.js';
export * from './echo.js';
export * from './sizes.js';
export * from './config.js';
export * from './packed-hashes.js';
export * from './block-tier.js';
export * from './validate.js';
export * from './engine-limits.js';
export * from './metaserver-limits.js';
export * from './chained-block-hash.js';
export * from './table-hash.js';
export * from './identity.js';
export * from './tls-flags.js';
export * from './etcd-tls-flags.js';
