// The index's key hash: the shared one from @kvfabric/common (every byte mixed in, int32 result).
export { hashBytes } from '@kvfabric/common';
