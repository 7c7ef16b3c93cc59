// @kvfabric/common/etcd: the metaserver leader key (record, keys, epochs) and the one etcd3 connection setup.
// Importing it loads etcd3 (~180 ms): the client imports it only when it follows an etcd:// address.
export * from './leader-record.js';
export * from './connect.js';
export * from './tls-check.js';
