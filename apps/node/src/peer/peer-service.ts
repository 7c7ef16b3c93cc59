// gRPC adapter of the Peer service on --addr: decodes and validates wire fields, calls the PeerServer core, maps
// errors through `implement` (the one RPC wrapper).
import type * as grpc from '@grpc/grpc-js';
import { PeerService, TransportKind } from '@kvfabric/proto';
import { KvError, checkHashList, checkId, checkNamespace, invalid } from '@kvfabric/common';
import { implement, type RpcContext } from '@kvfabric/common/rpc';
import { packChecksums } from '../peer-wire/checksums.js';
import { packOffsets } from '../peer-wire/offsets.js';
import type { PeerServer } from './peer-server.js';

export interface PeerServiceDeps {
  server: PeerServer;
  nodeId: string;
  transport: TransportKind;
}

function grantIdOf(v: bigint): number {
  if (v <= 0n || v > BigInt(Number.MAX_SAFE_INTEGER))
    throw invalid('grant_id', 'expected a grant id from PrepareRead', v.toString());
  return Number(v);
}

export function peerServiceImpl(deps: PeerServiceDeps, ctx: RpcContext): grpc.UntypedServiceImplementation {
  const { server } = deps;
  return implement(
    PeerService,
    {
      handshake: async (req) => {
        checkId(req.nodeId, 'node_id');
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
      prepareRead: async (req) => {
        checkId(req.nodeId, 'node_id');
        checkNamespace(req.namespace);
        const { packed, hashLen } = checkHashList(req.hashes);
        const g = await server.prepareRead(req.nodeId, req.session, req.namespace, Buffer.from(packed), hashLen);
        return {
          grantId: BigInt(g.grantId),
          blocks: g.blocks,
          shards: g.shards,
          pageBytes: BigInt(g.pageBytes),
          pageOffsets: packOffsets(g.pageOffsets),
          pageChecksums: packChecksums(g.checksums),
          expiresAtMs: BigInt(g.expiresAtMs),
          grantKey: g.key,
        };
      },
      releaseGrant: (req) => {
        checkId(req.nodeId, 'node_id');
        server.releaseGrant(req.nodeId, grantIdOf(req.grantId));
        return {};
      },
    },
    ctx,
  );
}
