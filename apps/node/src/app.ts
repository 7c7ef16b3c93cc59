// Builds kvfabric-node from its config, each part after the parts it needs: the data path; the block index,
// namespaces and eviction; with --metaserver-addr the one MetaserverClient and the reporter that advertises blocks
// through it, and the QueryPrefixStream that remote pulls look holders up on; when the data path can serve remote pulls, both sides of them (remote-pull-wiring.ts: transport,
// Peer service on --addr, and with a metaserver the remote fetcher); the engine core; the Engine gRPC service on
// the unix socket (and optionally loopback tcp); HTTP /health + /metrics; the lease and grant sweep.
// `NodeApp.start()` builds and binds everything; `stop()` unregisters from the metaserver and closes the rest.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { closeSync, rmSync } from 'node:fs';
import { EngineService, TransportKind } from '@kvfabric/proto';
import { HANDOVER_TOKEN_TTL_MS, RegionHandoverServer, handoverSocketPath } from '@kvfabric/native';
import { BlockUpdateStream, MetaserverClient, PrefixQueryStream } from '@kvfabric/client';
import { ENGINE_MAX_REQUEST_BYTES, ENGINE_MAX_RESPONSE_BYTES, TIER_BOTH, TIER_SSD, nodeIdFor } from '@kvfabric/common';
import {
  CHANNEL_OPTIONS,
  bindServer,
  messageSizeOptions,
  rpcInstruments,
  shutdownServer,
  type EtcdTls,
  type ServerSecurity,
} from '@kvfabric/common/rpc';
import { Metrics, startHttp, type HttpEndpoint, type Logger } from '@kvfabric/common/observability';
import { createBlockIndex } from './block-index.js';
import type { NodeConfig } from './config.js';
import { DataPath } from './data-path.js';
import { EngineCore } from './engine-core.js';
import { engineServiceImpl } from './engine-service.js';
import { bindPrivately, socketPermissions } from './engine-sockets.js';
import { Evictor } from './eviction.js';
import { HandedRegions } from './handed-regions.js';
import { NamespaceRegistry } from './namespaces.js';
import { nodeMetrics } from './node-metrics.js';
import { RemotePulls } from './remote-pull-wiring.js';
import { reporterFor } from './reporter-wiring.js';
import type { Reporter } from './reporter.js';
import { reporterMetrics } from './reporter-metrics.js';
import { peerMetrics } from './peer/peer-metrics.js';
import { chooseTransport, transportProblems } from './peer/transport.js';
import { SsdFirstFetcher } from './ssd/ssd-fetcher.js';
import { ssdMetrics } from './ssd/ssd-metrics.js';
import { SsdTier } from './ssd/ssd-tier.js';

export interface NodeAppOptions {
  config: NodeConfig;
  logger: Logger;
  /** Mutual TLS on the peer API and towards the metaserver and peers (loadServerSecurity); absent: plaintext. */
  security?: ServerSecurity;
  /** With an etcd:// --metaserver-addr: TLS to etcd (readEtcdTls); absent: plaintext. */
  etcdTls?: EtcdTls | undefined;
}

/** What `NodeApp.start()` built, in the order it built it. */
interface NodeParts {
  opts: NodeAppOptions;
  nodeId: string;
  metrics: Metrics;
  data: DataPath;
  transport: TransportKind;
  metaserver: MetaserverClient | undefined;
  lookups: PrefixQueryStream | undefined;
  updates: BlockUpdateStream | undefined;
  reporter: Reporter | undefined;
  pulls: RemotePulls;
  ssd: SsdTier | undefined;
  core: EngineCore;
  regions: HandedRegions;
  engineServer: grpc.Server;
}

/** Handed-over regions waiting for their RegisterInstance, at most (each holds a descriptor open). */
const MAX_UNCLAIMED_REGIONS = 256;

export class NodeApp {
  readonly nodeId: string;
  readonly metrics: Metrics;
  readonly data: DataPath;
  /** The one-sided read transport advertised to peers and the metaserver (TCP unless verbs was chosen). */
  readonly transport: TransportKind;
  readonly reporter: Reporter | undefined;
  /** Both sides of remote pulls. */
  readonly pulls: RemotePulls;
  /** The SSD tier (--ssd-path), if any. */
  readonly ssd: SsdTier | undefined;
  readonly core: EngineCore;
  /** Regions engines handed over on the handover socket, until a RegisterInstance claims them. */
  readonly regions: HandedRegions;
  engineAddr = '';
  httpAddr = '';
  private readonly opts: NodeAppOptions;
  private readonly metaserver: MetaserverClient | undefined;
  private readonly lookups: PrefixQueryStream | undefined;
  private readonly updates: BlockUpdateStream | undefined;
  private readonly engineServer: grpc.Server;
  private handover: RegionHandoverServer | undefined;
  private http: HttpEndpoint | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  private constructor(parts: NodeParts) {
    this.opts = parts.opts;
    this.nodeId = parts.nodeId;
    this.metrics = parts.metrics;
    this.data = parts.data;
    this.transport = parts.transport;
    this.metaserver = parts.metaserver;
    this.lookups = parts.lookups;
    this.updates = parts.updates;
    this.reporter = parts.reporter;
    this.pulls = parts.pulls;
    this.ssd = parts.ssd;
    this.core = parts.core;
    this.regions = parts.regions;
    this.engineServer = parts.engineServer;
  }

  /** The bound peer gRPC address (--addr with its port resolved); empty when remote pulls are off. */
  get addr(): string {
    return this.pulls?.addr ?? '';
  }

  /** Builds the node and binds its engine socket, HTTP endpoint and (with remote pulls) its peer address. */
  static async start(opts: NodeAppOptions): Promise<NodeApp> {
    const { config, logger } = opts;
    const tls = opts.security?.tls;
    // with a certificate the id is NAME/RANDOM: the metaserver and peers accept it only from that certificate
    const nodeId = tls ? nodeIdFor(tls.identity, randomUUID()) : randomUUID();
    const metrics = new Metrics('kvfabric-node');
    const data = new DataPath({
      poolBytes: config.poolSize,
      hugepages: config.hugepages,
      copyThreads: config.copyThreads,
    });
    const choice = chooseTransport(config.transport as 'auto' | 'verbs' | 'tcp', config.verbsAllowPoolRkey);
    const transport = choice.kind === 'verbs' ? TransportKind.TRANSPORT_KIND_VERBS : TransportKind.TRANSPORT_KIND_TCP;
    const namespaces = new NamespaceRegistry();
    const index = createBlockIndex(1 << 14);

    const metaserverOptions = {
      deadlineMs: Math.max(1000, config.heartbeatIntervalSecs * 1000),
      tls,
      etcdTls: opts.etcdTls,
    };
    const metaserver = config.metaserverAddr
      ? new MetaserverClient(config.metaserverAddr, metaserverOptions)
      : undefined;
    // Holder lookups of remote pulls, pipelined on one stream: a unary call per lookup costs the metaserver about
    // twice the CPU, and each leaves an HTTP/2 stream that only a full collection frees.
    const lookups = config.metaserverAddr ? new PrefixQueryStream(config.metaserverAddr, metaserverOptions) : undefined;
    // The reporter's inserts and removes, pipelined on one stream for the same reasons.
    const updates = config.metaserverAddr ? new BlockUpdateStream(config.metaserverAddr, metaserverOptions) : undefined;
    let ssd: SsdTier | undefined;
    const reporter =
      metaserver &&
      updates &&
      reporterFor({
        config,
        client: metaserver,
        updates,
        nodeId,
        transport,
        pool: data.pool,
        index,
        namespaces,
        logger,
        ssd: () => ssd,
      });
    if (reporter) reporterMetrics(metrics, reporter);
    const evictor = new Evictor(index, data, (run) => {
      if (!run.sealed) return;
      const ns = namespaces.get(run.ns);
      if (!ssd) return reporter?.removedMany(ns.name, run.packed, run.hashLen);
      ssd.dramEvicted(ns.name, run.packed, run.hashLen); // still held where on SSD
    });
    if (config.ssdPath?.length) {
      ssd = await SsdTier.open({
        paths: config.ssdPath,
        capacityBytes: config.ssdCapacity ?? 0,
        writeMode: config.ssdWriteMode as 'evict' | 'through',
        wipe: config.ssdWipe,
        pool: data.pool,
        index,
        namespaces,
        evictor,
        logger: logger.child({ component: 'ssd' }),
      });
      ssd.listener = reporter;
      ssdMetrics(metrics, ssd);
      // a rebooted host is warm at once: what survived on SSD is advertised as owned, held on SSD
      for (const g of ssd.resident()) reporter?.insertedMany(g.namespace, g.hashes.packed, g.hashes.hashLen, TIER_SSD);
    }
    const tier = ssd;
    // Blocks sealed in DRAM (saves, the command ring, pulls): advertised (held in both tiers when the SSD has them
    // too), and offered to the SSD writer (write-through queues them).
    const sealedInDram = (ns: string, hashes: Uint8Array, hashLen: number): void => {
      const info = tier && namespaces.byNameOrUndefined(ns);
      if (!info) {
        reporter?.insertedMany(ns, hashes, hashLen);
        return;
      }
      const { onSsd, elsewhere } = tier.split(ns, hashes, hashLen);
      reporter?.insertedMany(ns, elsewhere, hashLen);
      reporter?.movedMany(ns, onSsd, hashLen, TIER_BOTH);
      tier.sealed(info, hashes, hashLen);
    };

    const pulls = await RemotePulls.start({
      config,
      logger,
      metrics,
      nodeId,
      security: opts.security,
      choice,
      transportKind: transport,
      pool: data.pool,
      pulled: data,
      verify: (local, pageBytes, expected) => data.verify(local, pageBytes, expected),
      sum: (pages, pageBytes) => data.sum(pages, pageBytes),
      index,
      namespaces,
      evictor,
      metaserver: lookups && reporter && { lookups, reporter },
      onPulledSealed: sealedInDram,
      ...(tier
        ? { promote: (ns, packed, hashLen, count) => tier.promoter.promoteMissing(ns, packed, hashLen, count) }
        : {}),
    });
    peerMetrics(
      metrics,
      () => pulls?.peer,
      () => pulls?.transport,
    );

    const regions = new HandedRegions({ closeFd: closeSync, ttlMs: HANDOVER_TOKEN_TTL_MS, max: MAX_UNCLAIMED_REGIONS });
    const core = new EngineCore({
      data,
      regions,
      index,
      namespaces,
      evictor,
      leaseTtlMs: config.leaseTtlSecs * 1000,
      logger: logger.child({ component: 'engine' }),
      fetcher: tier ? new SsdFirstFetcher(tier.promoter, pulls?.fetcher) : pulls?.fetcher,
      onSealed: sealedInDram,
    });
    const engineServer = new grpc.Server({
      ...CHANNEL_OPTIONS,
      ...messageSizeOptions(ENGINE_MAX_REQUEST_BYTES, ENGINE_MAX_RESPONSE_BYTES),
    });
    engineServer.addService(
      EngineService,
      engineServiceImpl(
        {
          core,
          nodeId,
          addr: config.addr,
          transport,
          logger: logger.child({ component: 'session' }),
          instruments: nodeMetrics(metrics, core, data.pool, regions),
          metaserver: () => ({ epoch: reporter?.epoch ?? 0n, connected: reporter?.connected ?? false }),
        },
        { logger: logger.child({ component: 'rpc' }), instruments: rpcInstruments(metrics, '') },
      ),
    );
    const app = new NodeApp({
      opts,
      nodeId,
      metrics,
      data,
      transport,
      metaserver,
      lookups,
      updates,
      reporter,
      pulls,
      ssd,
      core,
      regions,
      engineServer,
    });
    await app.listen();
    logger.info(
      {
        nodeId,
        addr: app.addr || undefined,
        transport: choice?.kind,
        engineSocket: config.engineSocket,
        engineSocketMode: config.engineSocketMode,
        engineSocketGroup: config.engineSocketGroup,
        engineAddr: app.engineAddr || undefined,
        httpAddr: app.httpAddr,
        poolBytes: core.poolStats().capacityBytes,
        metaserver: config.metaserverAddr ?? null,
        ssd: ssd ? { paths: config.ssdPath, capacityBytes: ssd.capacityBytes, blocks: ssd.catalog.size } : null,
      },
      'kvfabric-node started',
    );
    return app;
  }

  /** Binds the engine socket (and --engine-addr) and the HTTP endpoint, starts the sweep and the reporter. */
  private async listen(): Promise<void> {
    const { config, logger } = this.opts;
    const perms = socketPermissions(config.engineSocketMode, config.engineSocketGroup);
    await bindPrivately(config.engineSocket, perms, (tmp) => bindServer(this.engineServer, `unix:${tmp}`));
    const regionLog = logger.child({ component: 'regions' });
    this.handover = await bindPrivately(handoverSocketPath(config.engineSocket), perms, (tmp) =>
      RegionHandoverServer.listen(tmp, (req) => {
        const decision = this.regions.admit(req.fd, req.file, req.peer, req.eventFd);
        if ('message' in decision) regionLog.warn({ peer: req.peer, err: decision.message }, 'region refused');
        return decision;
      }),
    );
    if (config.engineAddr) {
      const port = await bindServer(this.engineServer, config.engineAddr);
      this.engineAddr = config.engineAddr.replace(/:\d+$/, `:${port}`);
    }
    this.http = await startHttp({
      addr: config.httpAddr,
      metrics: this.metrics,
      logger,
      health: () => {
        const problems = this.pulls ? transportProblems(this.pulls.transport) : [];
        for (const d of this.ssd?.drives ?? [])
          if (!d.inService) problems.push(`ssd drive ${d.dir} out of service: ${d.reason ?? 'I/O error'}`);
        return {
          ok: !this.stopped && problems.length === 0,
          status: this.stopped ? 'stopping' : problems.length ? 'degraded' : 'ok',
          ...(problems.length ? { reasons: problems } : {}),
          nodeId: this.nodeId,
          blocks: this.core.index.stats().sealed,
          ssdBlocks: this.ssd ? this.ssd.catalog.size : null,
          metaserverConnected: this.reporter?.connected ?? null,
        };
      },
    });
    this.httpAddr = config.httpAddr.replace(/:\d+$/, `:${this.http.port}`);
    const sweepMs = Math.min(1000, Math.max(50, (Math.min(config.leaseTtlSecs, config.grantTtlSecs) * 1000) / 4));
    this.sweepTimer = setInterval(() => {
      this.core.sweep();
      this.regions.sweep();
      this.pulls?.sweep();
      this.ssd?.writer.kick();
    }, sweepMs);
    this.sweepTimer.unref();
    this.reporter?.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.sweepTimer);
    await this.reporter?.stop();
    await this.pulls?.stopServing();
    this.handover?.close();
    await shutdownServer(this.engineServer, 2000);
    await this.http?.close();
    this.metaserver?.close();
    this.lookups?.close();
    this.updates?.close();
    await this.pulls?.close();
    await this.ssd?.close();
    this.core.close();
    this.regions.close();
    this.data.close();
    rmSync(this.opts.config.engineSocket, { force: true });
    rmSync(handoverSocketPath(this.opts.config.engineSocket), { force: true });
    await this.metrics.shutdown();
  }
}
