// @kvfabric/metaserver: the store (for benches and tests that measure it) and the app (for in-process tests).
export * from './store/index.js';
export { MetaserverApp, type MetaserverAppOptions } from './app.js';
export { METASERVER_FLAGS, loadConfig, type MetaserverConfig } from './config.js';
