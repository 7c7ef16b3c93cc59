// @kvfabric/client: the metaserver client (also alone as @kvfabric/client/metaserver) and the engine SDK.
export * from './metaserver.js';
export * from './kv-region.js';
export * from './engine-connection.js';
export * from './engine-client.js';
