// The node's block index lives in native memory (@kvfabric/native: native/src/block_index.h): one slot per block,
// content-addressed per namespace, LRU lists and pins, nothing per block on the V8 heap. This module names it for
// the node's code.
export {
  BlockClass,
  createBlockIndex,
  type BlockIndex,
  type EvictedSlot,
  type IndexStats,
  type SealedHashes,
} from '@kvfabric/native';
