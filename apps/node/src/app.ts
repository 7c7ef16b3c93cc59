// Builds kvfabric-node from its config: native data path, engine core, Engine gRPC service on the unix socket
// (and optionally loopback tcp), HTTP /health + /metrics, metaserver reporter, lease sweep, and for remote pulls
// the one-sided read transport, the Peer gRPC service on --addr and the remote fetcher.
// `start()` binds everything; `stop()` unregisters from the metaserver and closes the rest.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { EngineService, PeerService, TransportKind } from '@kvfabric/proto';
import type { Transport } from '@kvfabric/native';
import { MetaserverClient } from '@kvfabric/client';
import { formatHostPort, parseHostPort, type PackedHashes } from '@kvfabric/common';
import { CHANNEL_OPTIONS, bindServer, rpcInstruments, shutdownServer } from '@kvfabric/common/rpc';
import { Metrics, startHttp, type HttpEndpoint, type Logger } from '@kvfabric/common/observability';
import type { NodeConfig } from './config.js';
import type { DataPath } from './data-path.js';
import { EngineCore, type Fetcher } from './engine-core.js';
import { engineServiceImpl } from './engine-service.js';
import { NativeDataPath } from './native-data-path.js';
import { nodeMetrics } from './node-metrics.js';
import { Reporter } from './reporter.js';
import { reporterMetrics } from './reporter-metrics.js';
import { RemoteFetcher, type HolderDirectory } from './fetch/fetcher.js';
import { PeerLinks } from './fetch/peer-links.js';
import { pullMetrics } from './fetch/pull-metrics.js';
import { PeerServer } from './peer/peer-server.js';
import { peerServiceImpl } from './peer/peer-service.js';
import { peerMetrics } from './peer/peer-metrics.js';
import { chooseTransport, createTransport } from './peer/transport.js';

export interface NodeAppOptions {
  config: NodeConfig;
  logger: Logger;
  /** Default: the native data path sized by the config. */
  data?: DataPath;
  fetcher?: Fetcher;
}

export class NodeApp {
  readonly nodeId = randomUUID();
  readonly metrics = new Metrics('kvfabric-node');
  readonly core: EngineCore;
  readonly data: DataPath;
  readonly reporter: Reporter | undefined;
  readonly transport: TransportKind;
  engineAddr = '';
  httpAddr = '';
  /** The bound peer gRPC address (--addr with its port resolved). */
  addr = '';
  /** Set in start() when the data path is native: the one-sided read transport and both sides of remote pulls. */
  dataTransport: Transport | undefined;
  peer: PeerServer | undefined;
  fetcher: RemoteFetcher | undefined;
  private links: PeerLinks | undefined;
  private readonly transportChoice: { kind: 'verbs' | 'tcp'; reason: string } | undefined;
  private readonly peerServer = new grpc.Server(CHANNEL_OPTIONS);
  private observePull: ((seconds: number) => void) | undefined;
  private readonly server = new grpc.Server(CHANNEL_OPTIONS);
  private http: HttpEndpoint | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: NodeAppOptions) {
    const { config, logger } = opts;
    this.data = opts.data ?? new NativeDataPath({ poolBytes: config.poolSize, hugepages: config.hugepages, copyThreads: config.copyThreads });
    // Remote pulls need the native pool (the transport reads straight into it); other data paths stay local-only.
    this.transportChoice = this.data instanceof NativeDataPath ? chooseTransport(config.transport as 'auto' | 'verbs' | 'tcp', config.verbsAllowPoolRkey) : undefined;
    this.transport = this.transportChoice?.kind === 'verbs' ? TransportKind.TRANSPORT_KIND_VERBS : TransportKind.TRANSPORT_KIND_TCP;
    let reporter: Reporter | undefined;
    const remote: Fetcher | undefined = this.transportChoice && config.metaserverAddr
      ? { fetch: (r) => (this.fetcher ? this.fetcher.fetch(r) : Promise.resolve({ ssd: 0, remote: 0 })) }
      : undefined;
    this.core = new EngineCore({
      data: this.data,
      leaseTtlMs: config.leaseTtlSecs * 1000,
      logger: logger.child({ component: 'engine' }),
      fetcher: opts.fetcher ?? remote,
      events: { sealed: (ns, key) => reporter?.inserted(ns, key), evicted: (ns, key) => reporter?.removed(ns, key) },
    });
    if (config.metaserverAddr) {
      reporter = new Reporter({
        client: new MetaserverClient(config.metaserverAddr, { deadlineMs: Math.max(1000, config.heartbeatIntervalSecs * 1000) }),
        nodeId: this.nodeId,
        addr: config.addr,
        transports: [this.transport],
        heartbeatMs: config.heartbeatIntervalSecs * 1000,
        readvertiseBlocksPerSec: config.readvertiseBlocksPerSec,
        stats: () => {
          const p = this.core.poolStats();
          return { poolCapacityBytes: p.capacityBytes, poolUsedBytes: p.usedBytes, blocks: this.core.index.stats().sealed };
        },
        resident: () => this.resident(),
        logger: logger.child({ component: 'reporter' }),
      });
      reporterMetrics(this.metrics, reporter);
    }
    this.reporter = reporter;
    peerMetrics(this.metrics, () => this.peer, () => this.dataTransport);
    if (remote) this.observePull = pullMetrics(this.metrics, () => this.fetcher, () => this.links);
    const instruments = nodeMetrics(this.metrics, this.core, this.data.pool);
    this.server.addService(
      EngineService,
      engineServiceImpl(
        {
          core: this.core,
          nodeId: this.nodeId,
          addr: config.addr,
          transport: this.transport,
          logger: logger.child({ component: 'session' }),
          instruments,
          metaserver: () => ({ epoch: reporter?.epoch ?? 0n, connected: reporter?.connected ?? false }),
        },
        { logger: logger.child({ component: 'rpc' }), instruments: rpcInstruments(this.metrics, '') },
      ),
    );
  }

  private resident(): { namespace: string; hashes: PackedHashes }[] {
    return this.core.index.sealedHashes().map(({ ns, hashes }) => ({ namespace: this.core.namespaces.get(ns).name, hashes }));
  }

  async start(): Promise<void> {
    const { config, logger } = this.opts;
    const socket = config.engineSocket;
    mkdirSync(dirname(socket), { recursive: true });
    if (existsSync(socket)) rmSync(socket); // a stale socket from a killed node
    await bindServer(this.server, `unix:${socket}`);
    if (config.engineAddr) {
      const port = await bindServer(this.server, config.engineAddr);
      this.engineAddr = config.engineAddr.replace(/:\d+$/, `:${port}`);
    }
    this.http = await startHttp({
      addr: config.httpAddr,
      metrics: this.metrics,
      logger,
      health: () => ({ ok: !this.stopped, nodeId: this.nodeId, blocks: this.core.index.stats().sealed, metaserverConnected: this.reporter?.connected ?? null }),
    });
    this.httpAddr = config.httpAddr.replace(/:\d+$/, `:${this.http.port}`);
    await this.startPeer();
    const sweepMs = Math.min(1000, Math.max(50, (Math.min(config.leaseTtlSecs, config.grantTtlSecs) * 1000) / 4));
    this.sweepTimer = setInterval(() => {
      this.core.sweep();
      this.peer?.sweep();
      this.links?.prune(600_000);
    }, sweepMs);
    this.sweepTimer.unref();
    this.reporter?.start();
    const pool = this.core.poolStats();
    logger.info({ nodeId: this.nodeId, addr: this.addr || undefined, transport: this.transportChoice?.kind, engineSocket: socket, engineAddr: this.engineAddr || undefined, httpAddr: this.httpAddr, poolBytes: pool.capacityBytes, metaserver: config.metaserverAddr ?? null }, 'kvfabric-node started');
  }

  /** The transport, the Peer service on --addr, and (with a metaserver) the remote fetcher. */
  private async startPeer(): Promise<void> {
    const { config, logger } = this.opts;
    if (!this.transportChoice || !(this.data instanceof NativeDataPath)) return;
    const { kind, reason } = this.transportChoice;
    const transport = await createTransport({ kind, pool: this.data.pool.native, addr: config.addr, streamsPerPeer: config.streamsPerPeer, nics: config.nics, logger: logger.child({ component: 'transport' }), verbs: {
      portNum: config.verbsPort, trafficClass: config.verbsTrafficClass, serviceLevel: config.verbsServiceLevel, ackTimeout: config.verbsAckTimeout,
      retryCount: config.verbsRetryCount, allowPoolRkey: config.verbsAllowPoolRkey, ...(config.verbsGidIndex !== undefined ? { gidIndex: config.verbsGidIndex } : {}),
    } });
    this.dataTransport = transport;
    logger.info({ transport: kind, reason, streamsPerPeer: config.streamsPerPeer }, `transport: ${kind} (${reason})`);
    const peer = new PeerServer({ nodeId: this.nodeId, transport, index: this.core.index, namespaces: this.core.namespaces, grantTtlMs: config.grantTtlSecs * 1000, logger: logger.child({ component: 'peer' }) });
    this.peer = peer;
    this.peerServer.addService(PeerService, peerServiceImpl({ server: peer, nodeId: this.nodeId, transport: this.transport }, { logger: logger.child({ component: 'peer-rpc' }), instruments: rpcInstruments(this.metrics, 'peer') }));
    const port = await bindServer(this.peerServer, config.addr);
    this.addr = formatHostPort({ host: parseHostPort(config.addr).host, port });
    const reporter = this.reporter;
    if (!config.metaserverAddr || !reporter) return;
    const meta = new MetaserverClient(config.metaserverAddr, { deadlineMs: 2000 });
    const directory: HolderDirectory = {
      up: () => reporter.connected || (reporter.counters.heartbeats === 0 && reporter.counters.heartbeatFailures === 0),
      holders: async (namespace, packed, hashLen, deadlineMs) => {
        const res = await meta.queryPrefix(namespace, { packed, hashLen }, { excludeNodeId: this.nodeId, deadlineMs });
        return res.nodes.map((n) => ({ nodeId: n.nodeId, addr: n.addr, prefixLen: n.prefixLen, poolUsedBytes: Number(n.poolUsedBytes) }));
      },
    };
    this.closeMeta = () => meta.close();
    this.links = new PeerLinks({ nodeId: this.nodeId, addr: this.addr, transport, transportKind: this.transport });
    this.fetcher = new RemoteFetcher({
      index: this.core.index,
      evictor: this.core.evictor,
      pool: this.data.pool,
      transport,
      links: this.links,
      directory,
      onSealed: (ns, key) => reporter.inserted(ns, key),
      logger: logger.child({ component: 'fetch' }),
      timeoutMs: config.pullTimeoutSecs * 1000,
      chunkBytes: config.pullChunkBytes,
      maxBytesPerSec: config.pullMaxBytesPerSec,
      backoffMs: config.pullBackoffSecs * 1000,
      observeDuration: this.observePull,
    });
  }

  private closeMeta: (() => void) | undefined;

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.sweepTimer);
    await this.reporter?.stop();
    await shutdownServer(this.peerServer, 2000);
    await shutdownServer(this.server, 2000);
    await this.http?.close();
    this.closeMeta?.();
    this.links?.close();
    this.peer?.close();
    await this.dataTransport?.close();
    this.core.close();
    this.data.close();
    rmSync(this.opts.config.engineSocket, { force: true });
    await this.metrics.shutdown();
  }
}
