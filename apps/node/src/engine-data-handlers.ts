// Save, Query, Load and Release of the Engine service as plain async handlers over the engine core: decode and
// validate the wire fields, call the core, time the call, encode the answer. engine-service.ts serves them as unary
// methods, engine-stream.ts as the items of the DataPlane stream (same validation, same core, same errors).
import {
  QueryState,
  type LoadRequest,
  type LoadResponse,
  type QueryRequest,
  type QueryResponse,
  type ReleaseRequest,
  type ReleaseResponse,
  type SaveRequest,
  type SaveResponse,
} from '@kvfabric/proto';
import { ENGINE_MAX_CALL_BLOCKS, checkHashList, unpackU32 } from '@kvfabric/common';
import type { EngineCore } from './engine-core.js';
import type { NodeInstruments } from './node-metrics.js';

export interface DataHandlerDeps {
  core: EngineCore;
  instruments: NodeInstruments;
}

/**
 * The data-plane operations (Save, Query, Load, Release) of one node, shared by the unary methods and DataPlane.
 * `key` is the instance credential the call presented: only the caller that registered an instance may use it.
 */
export interface DataHandlers {
  save(req: SaveRequest, key: string): Promise<SaveResponse>;
  query(req: QueryRequest, key: string): Promise<QueryResponse>;
  load(req: LoadRequest, key: string): Promise<LoadResponse>;
  release(req: ReleaseRequest, key: string): ReleaseResponse;
}

// Seconds since `t0` (from process.hrtime.bigint()); inline timing keeps the hot handlers free of per-call closures.
const since = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;
const RELEASED: ReleaseResponse = {};

export function dataHandlers(deps: DataHandlerDeps): DataHandlers {
  const { core, instruments } = deps;
  return {
    async save(req, key) {
      core.authorize(req.instanceId, key);
      const hashes = checkHashList(req.hashes, 'hashes', { maxCount: ENGINE_MAX_CALL_BLOCKS });
      const ids = unpackU32(req.blockIds);
      const t0 = process.hrtime.bigint();
      let res;
      try {
        res = await core.save(req.instanceId, ids, hashes.packed, hashes.hashLen);
      } finally {
        instruments.saveDuration.record(since(t0));
      }
      return {
        outcomes: Buffer.from(res.outcomes.buffer, res.outcomes.byteOffset, res.outcomes.byteLength),
        stored: res.stored,
        sealed: res.sealed,
      };
    },
    async query(req, key) {
      core.authorize(req.instanceId, key);
      const hashes = checkHashList(req.hashes, 'hashes', { maxCount: ENGINE_MAX_CALL_BLOCKS });
      const t0 = process.hrtime.bigint();
      let res;
      try {
        res = await core.query(req.instanceId, req.requestId, hashes.packed, hashes.hashLen, req.localOnly, req.waitMs);
      } finally {
        instruments.queryDuration.record(since(t0));
      }
      return {
        state: res.state === 'ready' ? QueryState.QUERY_STATE_READY : QueryState.QUERY_STATE_LOADING,
        hits: res.hits,
        leaseId: res.leaseId,
        leaseExpiresAtMs: BigInt(res.leaseExpiresAtMs),
        breakdown: res.breakdown,
      };
    },
    async load(req, key) {
      core.authorize(req.instanceId, key);
      const ids = unpackU32(req.blockIds);
      const t0 = process.hrtime.bigint();
      let res;
      try {
        res = await core.load(req.instanceId, req.leaseId, ids);
      } finally {
        instruments.loadDuration.record(since(t0));
      }
      return { loaded: res.loaded, bytes: BigInt(res.bytes) };
    },
    release(req, key) {
      core.authorize(req.instanceId, key);
      core.release(req.instanceId, req.leaseId);
      return RELEASED;
    },
  };
}
