export * from './metaserver-client.js';
export * from './prefix-query-stream.js';
export * from './leader-locator.js';
export * from './kv-region.js';
export * from './engine-client.js';
