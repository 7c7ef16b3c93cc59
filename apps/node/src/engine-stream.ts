// The Engine service's DataPlane stream: Save, Query, Load and Release pipelined on one long-lived stream. Each
// request is dispatched to the same handlers as the unary methods (`dataHandlers`: same validation, same core, same
// errors) and answered under its id, or with a per-item error (the stream goes on). Guard, metrics, logging and
// error mapping happen in `pipelineStream()` from @kvfabric/common, per item as for unary calls, labelled
// "dataPlane.save" etc. with attribute objects built once.
import type * as grpc from '@grpc/grpc-js';
import type { DataPlaneRequest, DataPlaneResponse } from '@kvfabric/proto';
import { invalid } from '@kvfabric/common';
import { pipelineStream, type RpcContext, type StreamItems } from '@kvfabric/common/rpc';
import type { DataHandlers } from './engine-data-handlers.js';
import { instanceKeyOf } from './instance-key.js';

export const DATA_PLANE = 'dataPlane';

const LABEL = {
  save: 'dataPlane.save',
  query: 'dataPlane.query',
  load: 'dataPlane.load',
  release: 'dataPlane.release',
  none: 'dataPlane',
} as const;

/**
 * The DataPlane handler. An item with an empty instance_id acts for the stream's instance: the first non-empty
 * instance_id the stream carried (items are taken in order, so a client may name it on its first item only).
 */
export function dataPlaneHandler(
  data: DataHandlers,
  ctx: RpcContext,
): grpc.handleBidiStreamingCall<DataPlaneRequest, DataPlaneResponse> {
  return (call) => pipelineStream(DATA_PLANE, dataPlaneItems(data, instanceKeyOf(call)), ctx)(call);
}

/**
 * The items of one DataPlane stream (the instance binding is per stream). `key`: the instance credential the stream
 * presented when it opened; every item acts with it.
 */
export function dataPlaneItems(data: DataHandlers, key: string): StreamItems<DataPlaneRequest, DataPlaneResponse> {
  let bound = '';
  /** The item's instance: its own, else the stream's; the first one named binds the stream. */
  const bind = (item: { instanceId: string }): void => {
    if (item.instanceId === '') {
      if (bound === '') throw invalid('instance_id', "required on the stream's first item");
      item.instanceId = bound;
    } else if (bound === '') {
      bound = item.instanceId;
    }
  };
  return {
    async answer(req) {
      const op = req.op;
      if (op === undefined) throw invalid('op', 'expected one of save, query, load, release');
      bind(op.value);
      switch (op.$case) {
        case 'save':
          return { id: req.id, result: { $case: 'save', value: await data.save(op.value, key) } };
        case 'query':
          return { id: req.id, result: { $case: 'query', value: await data.query(op.value, key) } };
        case 'load':
          return { id: req.id, result: { $case: 'load', value: await data.load(op.value, key) } };
        case 'release':
          return { id: req.id, result: { $case: 'release', value: data.release(op.value, key) } };
      }
    },
    itemError(req, err) {
      return { id: req.id, result: { $case: 'error', value: { code: err.code, message: err.message } } };
    },
    label(req) {
      return LABEL[req.op?.$case ?? 'none'];
    },
  };
}
