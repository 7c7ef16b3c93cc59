// Builds the metaserver from its config: store, gRPC server, HTTP /health + /metrics, the periodic sweep.
// `start()` binds everything; `stop()` drains gRPC (tryShutdown with a deadline) and closes the rest.
import * as grpc from '@grpc/grpc-js';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { MetaserverService, type LeaderInfo } from '@kvfabric/proto';
import {
  CHANNEL_OPTIONS,
  Metrics,
  bindServer,
  formatHostPort,
  parseHostPort,
  rpcInstruments,
  shutdownServer,
  startHttp,
  type HttpEndpoint,
  type Logger,
  type RpcContext,
} from '@kvfabric/common';
import type { MetaserverConfig } from './config.js';
import { registerStoreMetrics, type SweepInstruments } from './metrics.js';
import { metaserverImplementation } from './service.js';
import { MetaStore } from './store/index.js';

/** Entries a sweep step visits before yielding to the event loop. */
const SWEEP_STEP = 50_000;

export interface MetaserverAppOptions {
  config: Pick<MetaserverConfig, 'addr' | 'httpAddr' | 'nodeStaleSecs' | 'ttlMinutes' | 'sweepIntervalSecs'>;
  logger: Logger;
  clock?: () => number;
  /** Runs before every RPC (HA mode: followers refuse with NOT_LEADER). */
  guard?: RpcContext['guard'];
  /** Grace for in-flight RPCs on stop. */
  drainMs?: number;
}

export class MetaserverApp {
  readonly store: MetaStore;
  readonly metrics = new Metrics('kvfabric-metaserver');
  /** Bound addresses (the configured ones with a chosen port filled in), set by start(). */
  addr = '';
  httpAddr = '';
  private readonly opts: MetaserverAppOptions;
  private readonly logger: Logger;
  private readonly server: grpc.Server;
  private readonly sweepMetrics: SweepInstruments;
  private http: HttpEndpoint | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private stopping = false;

  constructor(opts: MetaserverAppOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    const { config } = opts;
    this.store = new MetaStore({
      nodeStaleMs: config.nodeStaleSecs * 1000,
      ttlMs: config.ttlMinutes * 60_000,
      clock: opts.clock,
    });
    this.sweepMetrics = registerStoreMetrics(this.metrics, this.store);
    const ctx: RpcContext = {
      logger: this.logger.child({ component: 'rpc' }),
      instruments: rpcInstruments(this.metrics, 'metaserver'),
      guard: opts.guard,
    };
    this.server = new grpc.Server(CHANNEL_OPTIONS);
    this.server.addService(MetaserverService, metaserverImplementation({ store: this.store, logger: this.logger, leader: () => this.leader() }, ctx));
  }

  leader(): LeaderInfo {
    return { addr: this.addr, epoch: this.store.epoch, sinceMs: BigInt(this.store.startedAtMs), ha: false, replicaId: '' };
  }

  async start(): Promise<void> {
    const { config } = this.opts;
    const { host } = parseHostPort(config.addr, 'addr');
    const port = await bindServer(this.server, config.addr);
    this.addr = formatHostPort({ host, port });
    try {
      this.http = await startHttp({ addr: config.httpAddr, metrics: this.metrics, health: () => this.health(), logger: this.logger });
    } catch (err) {
      this.server.forceShutdown();
      throw err;
    }
    this.httpAddr = formatHostPort({ host: parseHostPort(config.httpAddr, 'http-addr').host, port: this.http.port });
    this.sweepTimer = setInterval(() => this.runSweep(), config.sweepIntervalSecs * 1000);
    this.sweepTimer.unref();
    this.logger.info(
      { addr: this.addr, httpAddr: this.httpAddr, epoch: this.store.epoch.toString(), nodeStaleSecs: config.nodeStaleSecs, ttlMinutes: config.ttlMinutes },
      'metaserver listening',
    );
  }

  health() {
    const { live, stale } = this.store.nodeCounts();
    return {
      ok: true,
      epoch: this.store.epoch.toString(),
      nodes: { live, stale },
      blocks: this.store.blocks,
      owners: this.store.owners,
      namespaces: this.store.namespaceCount,
    };
  }

  /** One full sweep pass in steps that yield to the event loop; skipped when one is already running. */
  runSweep(): Promise<void> {
    if (this.sweeping) return this.sweeping;
    this.sweeping = (async () => {
      const started = process.hrtime.bigint();
      const total = { expired: 0, droppedSessions: 0, droppedOwners: 0 };
      for (;;) {
        const r = this.store.sweep(SWEEP_STEP);
        total.expired += r.expired;
        total.droppedSessions += r.droppedSessions;
        total.droppedOwners += r.droppedOwners;
        if (r.done || this.stopping) break;
        await yieldToLoop();
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.sweepMetrics.record(total, seconds);
      if (total.expired > 0 || total.droppedSessions > 0) this.logger.info({ ...total, seconds }, 'sweep dropped entries');
    })()
      .catch((err: unknown) => this.logger.error({ err }, 'sweep failed'))
      .finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.sweeping;
    await shutdownServer(this.server, this.opts.drainMs ?? 5000);
    await this.http?.close();
    await this.metrics.shutdown();
  }
}
