// Generated gRPC/protobuf code for kvfabric.v1 (see proto/). Regenerate with `npm run gen:proto`.
export * from './gen/kvfabric/v1/common.js';
export * from './gen/kvfabric/v1/metaserver.js';
export * from './gen/kvfabric/v1/node.js';
export * from './gen/kvfabric/v1/peer.js';
