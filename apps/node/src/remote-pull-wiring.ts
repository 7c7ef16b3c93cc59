// Both sides of remote pulls, wired in dependency order: the one-sided read transport over the native pool, the
// serving side (PeerServer behind the Peer gRPC service on --addr) and, with a metaserver, the pulling side
// (PeerLinks and the RemoteFetcher, which finds holders through the node's one MetaserverClient).
// `RemotePulls.start()` creates and binds everything; `stopServing()` then `close()` end it.
import * as grpc from '@grpc/grpc-js';
import { PeerService, type TransportKind } from '@kvfabric/proto';
import type { Pool, Transport } from '@kvfabric/native';
import type { PrefixQueryStream } from '@kvfabric/client';
import { formatHostPort, parseHostPort } from '@kvfabric/common';
import {
  CHANNEL_OPTIONS,
  bindServer,
  idleServerOptions,
  messageSizeOptions,
  rpcInstruments,
  shutdownServer,
  type ServerSecurity,
} from '@kvfabric/common/rpc';
import type { Logger, Metrics } from '@kvfabric/common/observability';
import type { BlockIndex } from './block-index.js';
import { grantPinBudgetBytes, type NodeConfig } from './config.js';
import type { PulledPages } from './data-path.js';
import type { Evictor } from './eviction.js';
import type { NamespaceRegistry } from './namespaces.js';
import type { Reporter } from './reporter.js';
import { RemoteFetcher } from './fetch/fetcher.js';
import type { HolderDirectory } from './fetch/pull-types.js';
import { PeerLinks } from './fetch/peer-links.js';
import { pullMetrics } from './fetch/pull-metrics.js';
import { PEER_MAX_REQUEST_BYTES, PEER_MAX_RESPONSE_BYTES } from './peer/peer-limits.js';
import type { PageVerifier } from './fetch/read-pipeline.js';
import { PeerServer, type PageSummer, type PeerServerOptions } from './peer/peer-server.js';
import { peerServiceImpl } from './peer/peer-service.js';
import { createTransport } from './peer/transport.js';

export interface RemotePullDeps {
  config: NodeConfig;
  logger: Logger;
  metrics: Metrics;
  nodeId: string;
  /** Mutual TLS for the Peer service and the links to peers; absent: plaintext. */
  security: ServerSecurity | undefined;
  /** The transport picked for this node (chooseTransport), and its wire enum. */
  choice: { kind: 'verbs' | 'tcp'; reason: string };
  transportKind: TransportKind;
  /** The pool the transport reads from and into. */
  pool: Pool;
  /** Sets up, seals and undoes pulled blocks in that pool (the data path), one native call per chunk. */
  pulled: PulledPages;
  /** Checks pulled pages of `pool` against their holder's checksums (the data path's copier). */
  verify: PageVerifier;
  /** Sums pages of `pool` a peer is granted before they were ever summed (the data path's copier). */
  sum: PageSummer;
  index: BlockIndex;
  namespaces: NamespaceRegistry;
  evictor: Evictor;
  /**
   * With a metaserver: where holders are looked up (a pipelined QueryPrefixStream: one HTTP/2 stream for every
   * lookup, not one per lookup) and whether it answers (the reporter's heartbeats).
   */
  metaserver?: { lookups: PrefixQueryStream; reporter: Reporter };
  /** Pulled blocks sealed in the pool (the app advertises them, and the SSD tier may queue them). */
  onPulledSealed: (namespace: string, packed: Uint8Array, hashLen: number) => void;
  /** The SSD tier's promotion of what a PrepareRead asks past the DRAM prefix (peers read SSD blocks too). */
  promote?: PeerServerOptions['promote'];
}

export class RemotePulls {
  private constructor(
    readonly transport: Transport,
    readonly peer: PeerServer,
    private readonly peerServer: grpc.Server,
    /** The bound peer gRPC address (--addr with its port resolved). */
    readonly addr: string,
    private readonly pulling: PullingSide | undefined,
  ) {}

  /** The fetcher that fills a query's missing suffix from peers; absent without a metaserver. */
  get fetcher(): RemoteFetcher | undefined {
    return this.pulling?.fetcher;
  }

  static async start(deps: RemotePullDeps): Promise<RemotePulls> {
    const { config, logger, choice } = deps;
    const transport = await createTransport({
      kind: choice.kind,
      pool: deps.pool,
      addr: config.addr,
      tcpDataPort: config.tcpDataPort,
      ...(config.tcpAdvertiseAddr !== undefined ? { tcpAdvertiseAddr: config.tcpAdvertiseAddr } : {}),
      streamsPerPeer: config.streamsPerPeer,
      nics: config.nics,
      logger: logger.child({ component: 'transport' }),
      readerStallMs: config.readerStallSecs * 1000,
      verbs: {
        portNum: config.verbsPort,
        trafficClass: config.verbsTrafficClass,
        serviceLevel: config.verbsServiceLevel,
        ackTimeout: config.verbsAckTimeout,
        retryCount: config.verbsRetryCount,
        allowPoolRkey: config.verbsAllowPoolRkey,
        ...(config.verbsGidIndex !== undefined ? { gidIndex: config.verbsGidIndex } : {}),
      },
    });
    logger.info(
      { transport: choice.kind, reason: choice.reason, streamsPerPeer: config.streamsPerPeer },
      `transport: ${choice.kind} (${choice.reason})`,
    );
    const peer = new PeerServer({
      nodeId: deps.nodeId,
      transport,
      index: deps.index,
      namespaces: deps.namespaces,
      sum: deps.sum,
      grantTtlMs: config.grantTtlSecs * 1000,
      grantPinBudgetBytes: grantPinBudgetBytes(config.grantPinBudget, deps.pool.sizeBytes),
      maxReaders: config.maxReaders,
      readerIdleMs: config.readerIdleSecs * 1000,
      logger: logger.child({ component: 'peer' }),
      ...(deps.promote ? { promote: deps.promote } : {}),
    });
    const peerServer = new grpc.Server({
      ...CHANNEL_OPTIONS,
      ...messageSizeOptions(PEER_MAX_REQUEST_BYTES, PEER_MAX_RESPONSE_BYTES),
      ...idleServerOptions(config.maxConnectionIdleSecs * 1000),
    });
    peerServer.addService(
      PeerService,
      peerServiceImpl(
        {
          server: peer,
          nodeId: deps.nodeId,
          transport: deps.transportKind,
          identify: deps.security?.identify ?? (() => undefined),
        },
        { logger: logger.child({ component: 'peer-rpc' }), instruments: rpcInstruments(deps.metrics, 'peer') },
      ),
    );
    const port = await bindServer(peerServer, config.addr, deps.security?.tls);
    const addr = formatHostPort({ host: parseHostPort(config.addr).host, port });
    const pulling = deps.metaserver && new PullingSide(deps, transport, addr, deps.metaserver);
    return new RemotePulls(transport, peer, peerServer, addr, pulling);
  }

  /** Expires grants and forgets idle links; run with the node's sweep. */
  sweep(): void {
    this.peer.sweep();
    this.pulling?.links.prune(600_000);
  }

  /** Stops the Peer service (graceful, then forced); the engine service may still finish its calls. */
  async stopServing(): Promise<void> {
    await shutdownServer(this.peerServer, 2000);
  }

  /** Closes links, grants and the transport (after the engine service stopped). */
  async close(): Promise<void> {
    this.pulling?.links.close();
    this.peer.close();
    await this.transport.close();
  }
}

/** The pulling side: present when the node has a metaserver to find holders with. */
class PullingSide {
  readonly links: PeerLinks;
  readonly fetcher: RemoteFetcher;

  constructor(
    deps: RemotePullDeps,
    transport: Transport,
    addr: string,
    metaserver: { lookups: PrefixQueryStream; reporter: Reporter },
  ) {
    const { config, nodeId } = deps;
    const { lookups, reporter } = metaserver;
    const directory: HolderDirectory = {
      up: () => reporter.connected || (reporter.counters.heartbeats === 0 && reporter.counters.heartbeatFailures === 0),
      holders: async (namespace, packed, hashLen, deadlineMs) => {
        const res = await lookups.query(namespace, { packed, hashLen }, { excludeNodeId: nodeId, deadlineMs });
        return res.nodes.map((n) => ({
          nodeId: n.nodeId,
          addr: n.addr,
          prefixLen: n.prefixLen,
          poolUsedBytes: Number(n.poolUsedBytes),
        }));
      },
    };
    this.links = new PeerLinks({
      nodeId,
      addr,
      transport,
      transportKind: deps.transportKind,
      tls: deps.security?.tls,
    });
    // The instruments read this side's fetcher and links at scrape time; the fetcher records its durations itself.
    const observePull = pullMetrics(
      deps.metrics,
      () => this.fetcher,
      () => this.links,
    );
    this.fetcher = new RemoteFetcher({
      index: deps.index,
      evictor: deps.evictor,
      data: deps.pulled,
      transport,
      verify: deps.verify,
      links: this.links,
      directory,
      onSealed: deps.onPulledSealed,
      logger: deps.logger.child({ component: 'fetch' }),
      timeoutMs: config.pullTimeoutSecs * 1000,
      chunkBytes: config.pullChunkBytes,
      maxBytesPerSec: config.pullMaxBytesPerSec,
      backoffMs: config.pullBackoffSecs * 1000,
      suspectMs: config.pullSuspectSecs * 1000,
      observeDuration: observePull,
    });
  }
}
