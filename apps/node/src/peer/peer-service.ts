// gRPC adapter of the Peer service on --addr: decodes and validates wire fields, calls the PeerServer core, maps
// errors through `implement` (the one RPC wrapper).
import type * as grpc from '@grpc/grpc-js';
import { PeerService, TransportKind } from '@kvfabric/proto';
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
import { implement, type RpcContext, type ServerSecurity } from '@kvfabric/common/rpc';
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

export function peerServiceImpl(deps: PeerServiceDeps, ctx: RpcContext): grpc.UntypedServiceImplementation {
  const { server } = deps;
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
        const res = await server.handshake(req.nodeId, Buffer.from(req.material));
        return { nodeId: deps.nodeId, transport: deps.transport, material: res.material, session: res.session };
      },
      prepareRead: async (req, call) => {
        const who = deps.identify(call);
        readerOf(req, who);
        checkNamespace(req.namespace);
        authorizeNamespace(who, req.namespace);
        const { packed, hashLen } = checkHashList(req.hashes, 'hashes', { maxCount: PEER_MAX_READ_HASHES });
        const release = releaseIdsOf(req.releaseGrantIds);
        const g = await server.prepareRead(
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
      },
      releaseGrant: (req, call) => {
        readerOf(req, deps.identify(call));
        server.releaseGrant(req.nodeId, req.session, grantIdOf(req.grantId));
        return {};
      },
    },
    ctx,
  );
}
