// @kvfabric/client/metaserver: the metaserver side of the client only (addresses, MetaserverClient,
// PrefixQueryStream, leader following), without the engine SDK and node.proto, so a program that only talks to the
// metaserver (the CLI) starts fast. etcd3 is loaded only when an etcd:// address is used.
export { LEADER_ADDR_KEY } from '@kvfabric/common/rpc';
export type { LeaderRecord } from '@kvfabric/common/etcd';
export * from './metaserver-address.js';
export * from './metaserver-client.js';
export * from './metaserver-stream.js';
export * from './prefix-query-stream.js';
export * from './block-update-stream.js';
export { resolveLeaderAddr, type LeaderChannelOptions, type LeaderListener } from './leader-channel.js';
export type { LeaderLocator, LeaderLocatorOptions } from './leader-locator.js';
