// The pipelined UpdateBlocksStream: each request message is one InsertBlocks or RemoveBlocks, answered with the unary
// call's answer under the request's id (or a per-item error; the stream goes on). A node's reporter sends its
// updates here: one HTTP/2 stream for all of them instead of one per call, so the metaserver handles an update
// without a call's headers, trailers and call objects (garbage that, for unary calls, outlives young collections).
import type { UpdateBlocksStreamRequest, UpdateBlocksStreamResponse } from '@kvfabric/proto';
import { invalid } from '@kvfabric/common';
import { insertBlocks, removeBlocks } from './block-updates.js';
import type { IndexStreamItems } from './index-stream.js';

export const UPDATE_BLOCKS_STREAM = 'updateBlocksStream';

/** Metric labels of the items: one per kind, as the unary calls' (built once). */
const LABELS = { insert: `${UPDATE_BLOCKS_STREAM}.insert`, remove: `${UPDATE_BLOCKS_STREAM}.remove` } as const;

export const updateBlocksItems: IndexStreamItems<UpdateBlocksStreamRequest, UpdateBlocksStreamResponse> = (
  store,
  who,
) => ({
  answer(req) {
    const u = req.update;
    if (u === undefined) throw invalid('update', 'expected insert or remove', 'unset');
    if (u.$case === 'insert')
      return { id: req.id, answer: { $case: 'inserted', value: insertBlocks(store, who, u.value) } };
    return { id: req.id, answer: { $case: 'removed', value: removeBlocks(store, who, u.value) } };
  },
  itemError(req, err) {
    return { id: req.id, answer: { $case: 'error', value: { code: err.code, message: err.message } } };
  },
  label: (req) => (req.update === undefined ? UPDATE_BLOCKS_STREAM : LABELS[req.update.$case]),
});
