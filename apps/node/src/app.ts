// Builds kvfabric-node from its config: native data path, engine core, Engine gRPC service on the unix socket
// (and optionally loopback tcp), HTTP /health + /metrics, metaserver reporter, lease sweep.
// `start()` binds everything; `stop()` unregisters from the metaserver and closes the rest.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { EngineService, TransportKind } from '@kvfabric/proto';
import { MetaserverClient } from '@kvfabric/client';
import { CHANNEL_OPTIONS, Metrics, bindServer, rpcInstruments, shutdownServer, startHttp, type HttpEndpoint, type Logger } from '@kvfabric/common';
import type { NodeConfig } from './config.js';
import type { DataPath } from './data-path.js';
import { EngineCore, type Fetcher } from './engine-core.js';
import { engineServiceImpl } from './engine-service.js';
import { NativeDataPath } from './native-data-path.js';
import { nodeMetrics } from './node-metrics.js';
import { Reporter } from './reporter.js';
import { reporterMetrics } from './reporter-metrics.js';

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
  private readonly server = new grpc.Server(CHANNEL_OPTIONS);
  private http: HttpEndpoint | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: NodeAppOptions) {
    const { config, logger } = opts;
    this.data = opts.data ?? new NativeDataPath({ poolBytes: config.poolSize, hugepages: config.hugepages, copyThreads: config.copyThreads });
    // verbs is wired by the peer transport (next issue); until then every node speaks tcp.
    this.transport = TransportKind.TRANSPORT_KIND_TCP;
    if (config.transport !== 'tcp') logger.info({ requested: config.transport, using: 'tcp' }, 'transport: tcp (verbs transport not wired into this build)');
    let reporter: Reporter | undefined;
    this.core = new EngineCore({
      data: this.data,
      leaseTtlMs: config.leaseTtlSecs * 1000,
      logger: logger.child({ component: 'engine' }),
      fetcher: opts.fetcher,
      events: { sealed: (ns, key) => reporter?.inserted(ns, key), evicted: (ns, key) => reporter?.removed(ns, key) },
    });
    if (config.metaserverAddr) {
      reporter = new Reporter({
        client: new MetaserverClient(config.metaserverAddr, { deadlineMs: Math.max(1000, config.heartbeatIntervalSecs * 1000) }),
        nodeId: this.nodeId,
        addr: config.addr,
        transports: [this.transport],
        heartbeatMs: config.heartbeatIntervalSecs * 1000,
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
        { logger: logger.child({ component: 'rpc' }), instruments: rpcInstruments(this.metrics, 'node') },
      ),
    );
  }

  private *resident(): Generator<{ ns: string; key: string }> {
    for (const { ns, key } of this.core.index.sealedKeys()) yield { ns: this.core.namespaces.get(ns).name, key };
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
    const sweepMs = Math.min(1000, Math.max(50, (config.leaseTtlSecs * 1000) / 4));
    this.sweepTimer = setInterval(() => this.core.sweep(), sweepMs);
    this.sweepTimer.unref();
    this.reporter?.start();
    const pool = this.core.poolStats();
    logger.info({ nodeId: this.nodeId, engineSocket: socket, engineAddr: this.engineAddr || undefined, httpAddr: this.httpAddr, poolBytes: pool.capacityBytes, metaserver: config.metaserverAddr ?? null }, 'kvfabric-node started');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.sweepTimer);
    await this.reporter?.stop();
    await shutdownServer(this.server, 2000);
    await this.http?.close();
    this.core.close();
    this.data.close();
    rmSync(this.opts.config.engineSocket, { force: true });
    await this.metrics.shutdown();
  }
}
