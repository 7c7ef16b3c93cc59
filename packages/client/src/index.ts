export * from './metaserver-client.js';
export * from './kv-region.js';
export * from './engine-client.js';
