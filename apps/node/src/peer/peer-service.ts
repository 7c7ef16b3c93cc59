// gRPC adapter of the Peer service on --addr: decodes and validates wire fields, calls the PeerServer core, maps
// errors through `implement` (the one RPC wrapper) and, for GrantStream's items, `pipelineStream`. A PrepareRead or
// ReleaseGrant is the same function whether it came as a unary call or as an item of the stream.
import type * as grpc from '@grpc/grpc-js';
import {
  PeerService,
  TransportKind,
  type GrantStreamRequest,
  type GrantStreamResponse,
  type PrepareReadRequest,
  type PrepareReadResponse,
  type ReleaseGrantRequest,
} from '@kvfabric/proto';
import {
  KvError,
  authorizeNamespace,
  authorizeNode,
  checkHashList,
  checkId,
  checkNamespace,
  invalid,
  type Identity,
} from '@kvfabric/common';
import { implement, pipelineStream, type RpcContext, type ServerSecurity } from '@kvfabric/common/rpc';
import { GRANT_ID_BYTES, type GrantId } from '@kvfabric/native';
import { packChecksums } from '../peer-wire/checksums.js';
import { packOffsets } from '../peer-wire/offsets.js';
import { PEER_MAX_READ_HASHES, PEER_MAX_RELEASE_GRANTS } from './peer-limits.js';
import type { PeerServer } from './peer-server.js';

export interface PeerServiceDeps {
  server: PeerServer;
  nodeId: string;
  transport: TransportKind;
  /** Who called (undefined on a plaintext server), namespace policy applied. */
  identify: ServerSecurity['identify'];
}

/** The reader's node id, which must belong to the certificate it connected with. */
function readerOf(req: { nodeId: string }, who: Identity | undefined): string {
  checkId(req.nodeId, 'node_id');
  authorizeNode(who, req.nodeId);
  return req.nodeId;
}

function grantIdOf(v: Uint8Array): GrantId {
  if (v.length !== GRANT_ID_BYTES) {
    const hex = Buffer.from(v.subarray(0, 32)).toString('hex');
    throw invalid('grant_id', `expected the ${GRANT_ID_BYTES} bytes of a grant id from PrepareRead`, hex);
  }
  return Buffer.from(v).toString('hex');
}

/** `release_grant_ids`: whole grant ids, at most PEER_MAX_RELEASE_GRANTS of them, none twice. */
function releaseIdsOf(v: Uint8Array): GrantId[] {
  const field = 'release_grant_ids';
  if (v.length % GRANT_ID_BYTES !== 0)
    throw invalid(field, `expected grant ids of ${GRANT_ID_BYTES} bytes each, concatenated`, `${v.length} bytes`);
  const n = v.length / GRANT_ID_BYTES;
  if (n > PEER_MAX_RELEASE_GRANTS) throw invalid(field, `at most ${PEER_MAX_RELEASE_GRANTS} grant ids`, n);
  const ids: GrantId[] = [];
  for (let i = 0; i < n; i++) {
    const id = Buffer.from(v.subarray(i * GRANT_ID_BYTES, (i + 1) * GRANT_ID_BYTES)).toString('hex');
    if (ids.includes(id)) throw invalid(`${field}[${i}]`, 'a grant id named once', id);
    ids.push(id);
  }
  return ids;
}

/** The stream's method name, and its items' metric labels (one per kind, built once). */
export const GRANT_STREAM = 'grantStream';
const LABELS = { prepareRead: `${GRANT_STREAM}.prepareRead`, releaseGrant: `${GRANT_STREAM}.releaseGrant` } as const;

async function prepareRead(
  deps: PeerServiceDeps,
  req: PrepareReadRequest,
  who: Identity | undefined,
): Promise<PrepareReadResponse> {
  readerOf(req, who);
  checkNamespace(req.namespace);
  authorizeNamespace(who, req.namespace);
  const { packed, hashLen } = checkHashList(req.hashes, 'hashes', { maxCount: PEER_MAX_READ_HASHES });
  const release = releaseIdsOf(req.releaseGrantIds);
  const g = await deps.server.prepareRead(
    req.nodeId,
    req.session,
    req.namespace,
    Buffer.from(packed),
    hashLen,
    release,
  );
  return {
    grantId: Buffer.from(g.grantId, 'hex'),
    blocks: g.blocks,
    shards: g.shards,
    pageBytes: BigInt(g.pageBytes),
    pageOffsets: packOffsets(g.pageOffsets),
    pageChecksums: packChecksums(g.checksums),
    expiresAtMs: BigInt(g.expiresAtMs),
    grantKey: g.key,
    grantPinBudgetBytes: BigInt(g.pinBudgetBytes),
  };
}

function releaseGrant(deps: PeerServiceDeps, req: ReleaseGrantRequest, who: Identity | undefined): object {
  readerOf(req, who);
  deps.server.releaseGrant(req.nodeId, req.session, grantIdOf(req.grantId));
  return {};
}

/**
 * GrantStream: the caller is identified once, when the stream opens (a refusal ends the stream with the unary
 * calls' status); then each item is answered like its unary call, or with a per-item error.
 */
function grantStream(
  deps: PeerServiceDeps,
  ctx: RpcContext,
): grpc.handleBidiStreamingCall<GrantStreamRequest, GrantStreamResponse> {
  return (call) => {
    let who: Identity | undefined;
    let identified = false;
    pipelineStream<GrantStreamRequest, GrantStreamResponse>(
      GRANT_STREAM,
      {
        check() {
          if (identified) return;
          who = deps.identify(call);
          identified = true;
        },
        answer(req) {
          const c = req.call;
          if (c === undefined) throw invalid('call', 'expected prepare_read or release_grant', 'unset');
          if (c.$case === 'prepareRead')
            return prepareRead(deps, c.value, who).then((value) => ({
              id: req.id,
              answer: { $case: 'prepared', value },
            }));
          releaseGrant(deps, c.value, who);
          return { id: req.id, answer: { $case: 'released', value: {} } };
        },
        itemError(req, err) {
          return { id: req.id, answer: { $case: 'error', value: { code: err.code, message: err.message } } };
        },
        label: (req) => (req.call === undefined ? GRANT_STREAM : LABELS[req.call.$case]),
      },
      ctx,
    )(call);
  };
}

export function peerServiceImpl(deps: PeerServiceDeps, ctx: RpcContext): grpc.UntypedServiceImplementation {
  return implement(
    PeerService,
    {
      handshake: async (req, call) => {
        readerOf(req, deps.identify(call));
        if (req.nodeId === deps.nodeId) throw invalid('node_id', 'a node does not pull from itself', req.nodeId);
        if (req.transport !== deps.transport) {
          throw new KvError(
            'TRANSPORT_UNAVAILABLE',
            `transport: this node speaks ${TransportKind[deps.transport]}, the reader asked for ${TransportKind[req.transport] ?? req.transport}`,
          );
        }
        const res = await deps.server.handshake(req.nodeId, Buffer.from(req.material));
        return { nodeId: deps.nodeId, transport: deps.transport, material: res.material, session: res.session };
      },
      prepareRead: (req, call) => prepareRead(deps, req, deps.identify(call)),
      releaseGrant: (req, call) => releaseGrant(deps, req, deps.identify(call)),
      grantStream: grantStream(deps, ctx) as grpc.UntypedHandleCall,
    },
    ctx,
  );
}
