// Generated gRPC/protobuf code for kvfabric.v1 (see proto/). Regenerate with `npm run gen:proto`. Each service is
// also its own subpath (@kvfabric/proto/metaserver, /node, /peer, /common): a program that talks to one service
// loads only its code (the CLI starts faster). prefix-wire: hand-written codecs of the hot QueryPrefix messages.
export * from './gen/kvfabric/v1/common.js';
export * from './gen/kvfabric/v1/metaserver.js';
export * from './gen/kvfabric/v1/node.js';
export * from './gen/kvfabric/v1/peer.js';
export * from './prefix-wire.js';
