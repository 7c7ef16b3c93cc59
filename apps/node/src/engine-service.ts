// gRPC adapter of the Engine service: decodes and validates wire fields, calls the engine core, maps errors
// (through `implement`, the one RPC wrapper). Session streams tie an instance's life to its engine's. Save, Query,
// Load and Release are `dataHandlers` (engine-data-handlers.ts), served both as unary methods and as items of the
// DataPlane stream (engine-stream.ts).
import type * as grpc from '@grpc/grpc-js';
import {
  EngineService,
  type TransportKind,
  type Geometry,
  type RegisterInstanceRequest,
  type SessionMessage,
  type SessionEvent,
  type StatusResponse,
} from '@kvfabric/proto';
import { KvError, invalid, toKvError } from '@kvfabric/common';
import { errorToStatus, implement, type RpcContext } from '@kvfabric/common/rpc';
import { type Logger } from '@kvfabric/common/observability';
import type { EngineCore } from './engine-core.js';
import { dataHandlers } from './engine-data-handlers.js';
import { dataPlaneHandler } from './engine-stream.js';
import { instanceKeyOf } from './instance-key.js';
import type { RegisterSpec } from './instances.js';
import type { NodeInstruments } from './node-metrics.js';

export interface EngineServiceDeps {
  core: EngineCore;
  nodeId: string;
  addr: string;
  transport: TransportKind;
  logger: Logger;
  instruments: NodeInstruments;
  metaserver: () => { epoch: bigint; connected: boolean };
}

function u64(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(field, 'expected at most 2^53', value.toString());
  return Number(value);
}

export function decodeRegister(req: RegisterInstanceRequest): RegisterSpec {
  const g: Geometry | undefined = req.geometry;
  if (!g) throw invalid('geometry', 'required');
  if (!req.region) throw invalid('region', 'required');
  return {
    instanceId: req.instanceId,
    engineId: req.engineId || req.instanceId,
    namespace: req.namespace,
    tpSize: req.tpSize,
    tpRank: req.tpRank,
    worldSize: req.worldSize,
    replicated: req.replicated,
    segmentOffsets: g.segmentOffsets.map((o, i) => u64(o, `geometry.segment_offsets[${i}]`)),
    segmentBytes: u64(g.segmentBytes, 'geometry.segment_bytes'),
    blockStrideBytes: u64(g.blockStrideBytes, 'geometry.block_stride_bytes'),
    numBlocks: g.numBlocks,
    region: {
      token: req.region.token,
      sizeBytes: u64(req.region.sizeBytes, 'region.size_bytes'),
      cudaIpc: req.region.cudaIpc && {
        device: req.region.cudaIpc.device,
        parts: req.region.cudaIpc.parts.map((p, i) => ({
          handle: p.handle,
          offsetBytes: u64(p.offsetBytes, `region.cuda_ipc.parts[${i}].offset_bytes`),
          sizeBytes: u64(p.sizeBytes, `region.cuda_ipc.parts[${i}].size_bytes`),
        })),
      },
    },
  };
}

export function engineServiceImpl(deps: EngineServiceDeps, ctx: RpcContext): grpc.UntypedServiceImplementation {
  const { core } = deps;
  const sessions = new Map<string, grpc.ServerDuplexStream<SessionMessage, SessionEvent>>();
  const data = dataHandlers(deps);

  return implement(
    EngineService,
    {
      registerInstance: (req) => {
        const res = core.register(decodeRegister(req));
        return { nodeId: deps.nodeId, pageBytes: BigInt(res.pageBytes), shards: res.shards, instanceKey: res.key };
      },
      unregisterInstance: (req, call) => {
        core.authorize(req.instanceId, instanceKeyOf(call));
        core.unregister(req.instanceId);
        return {};
      },
      attachRing: (req, call) => {
        if (!req.ring) throw invalid('ring', 'required');
        const ring = { token: req.ring.token, sizeBytes: u64(req.ring.sizeBytes, 'ring.size_bytes') };
        return core.attachRing(req.instanceId, instanceKeyOf(call), ring);
      },
      save: (req, call) => data.save(req, instanceKeyOf(call)),
      query: (req, call) => data.query(req, instanceKeyOf(call)),
      load: (req, call) => data.load(req, instanceKeyOf(call)),
      release: (req, call) => data.release(req, instanceKeyOf(call)),
      dataPlane: dataPlaneHandler(data, ctx) as grpc.UntypedHandleCall,
      status: (): StatusResponse => {
        const pool = core.poolStats();
        const ms = deps.metaserver();
        return {
          nodeId: deps.nodeId,
          addr: deps.addr,
          transport: deps.transport,
          poolCapacityBytes: BigInt(pool.capacityBytes),
          poolUsedBytes: BigInt(pool.usedBytes),
          blocks: BigInt(core.index.stats().sealed),
          instances: core.instanceCount,
          metaserverEpoch: ms.epoch,
          metaserverConnected: ms.connected,
        };
      },
      session: ((call: grpc.ServerDuplexStream<SessionMessage, SessionEvent>) => {
        let instanceId: string | undefined;
        let ended = false;
        const end = (why: string) => {
          if (ended) return;
          ended = true;
          if (instanceId && sessions.get(instanceId) === call) {
            sessions.delete(instanceId);
            if (core.unregister(instanceId))
              deps.logger.info({ instance: instanceId, why }, 'session ended; instance dropped');
          }
        };
        const fail = (err: KvError) => {
          ended = true;
          call.emit('error', errorToStatus(err));
        };
        call.on('data', (msg: SessionMessage) => {
          if (instanceId !== undefined || ended) return; // later messages are keep-alives
          try {
            core.authorize(msg.instanceId, instanceKeyOf(call));
            if (sessions.has(msg.instanceId))
              throw new KvError(
                'SESSION_CONFLICT',
                `instance_id: ${JSON.stringify(msg.instanceId)} already has a session`,
              );
            instanceId = msg.instanceId;
            sessions.set(instanceId, call);
            call.write({ nodeId: deps.nodeId, serverTimeMs: BigInt(Date.now()) });
          } catch (err) {
            fail(toKvError(err));
          }
        });
        call.on('end', () => {
          end('closed by engine');
          call.end();
        });
        call.on('cancelled', () => end('cancelled'));
        call.on('error', () => end('stream error'));
        call.on('close', () => end('closed'));
      }) as grpc.UntypedHandleCall,
    },
    ctx,
  );
}
