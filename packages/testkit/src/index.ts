export * from './ports.js';
export * from './process.js';
export * from './kvfabric.js';
export * from './etcd.js';
export * from './commands.js';
export * from './certs.js';
export * from './rejection.js';
export * from './fuzz.js';
