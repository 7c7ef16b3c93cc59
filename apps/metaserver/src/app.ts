// Builds the metaserver from its config: store, gRPC server, HTTP /health + /metrics, the periodic sweep.
// `start()` binds everything; `stop()` drains gRPC (tryShutdown with a deadline) and closes the rest.
// HA mode (--etcd-endpoints): the replica campaigns through etcd (ha/); RPCs pass the guard only while it leads
// with a valid lease; every election starts a FRESH store with the new epoch (nodes re-advertise), and stepping
// down drops the store. The services, metrics and sweep read the current store through `() => this.store`.
import * as grpc from '@grpc/grpc-js';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { MetaserverWire, type LeaderInfo } from '@kvfabric/proto';
import {
  METASERVER_MAX_REQUEST_BYTES,
  METASERVER_MAX_RESPONSE_BYTES,
  formatHostPort,
  identityUri,
  parseHostPort,
} from '@kvfabric/common';
import {
  CHANNEL_OPTIONS,
  bindServer,
  idleServerOptions,
  messageSizeOptions,
  rpcInstruments,
  shutdownServer,
  type EtcdTls,
  type RpcContext,
  type ServerSecurity,
} from '@kvfabric/common/rpc';
import {
  Metrics,
  gcPausesRoute,
  observeGcPauses,
  startHttp,
  type GcPauseMetrics,
  type HttpEndpoint,
  type Logger,
} from '@kvfabric/common/observability';
import { METASERVER_FLAGS, type MetaserverConfig } from './config.js';
import { HaMode } from './ha/ha-mode.js';
import type { LeaderRecord } from '@kvfabric/common/etcd';
import { registerLeadershipMetrics } from './ha/metrics.js';
import { registerStoreMetrics, type SweepInstruments } from './metrics.js';
import { metaserverServiceImpl } from './metaserver-service.js';
import { MetaStore } from './store/index.js';

export interface MetaserverAppOptions {
  config: Pick<MetaserverConfig, 'addr' | 'httpAddr' | 'nodeStaleSecs' | 'ttlMinutes' | 'sweepIntervalSecs'> &
    Partial<
      Pick<
        MetaserverConfig,
        | 'etcdEndpoints'
        | 'etcdPrefix'
        | 'etcdLeaseTtlSecs'
        | 'advertiseAddr'
        | 'replicaId'
        | 'maxBlocksPerNode'
        | 'maxIndexMemory'
        | 'maxConnectionIdleSecs'
      >
    >;
  logger: Logger;
  clock?: () => number;
  /** Runs before every RPC (HA mode: followers refuse with NOT_LEADER). */
  guard?: RpcContext['guard'];
  /** Grace for in-flight RPCs on stop. */
  drainMs?: number;
  /** Mutual TLS and the namespace policy (loadServerSecurity); without it the server speaks plaintext. */
  security?: ServerSecurity;
  /** HA mode: TLS to etcd (readEtcdTls); without it etcd is spoken to in plaintext. */
  etcdTls?: EtcdTls | undefined;
}

export class MetaserverApp {
  /** HA mode only. */
  readonly ha: HaMode | undefined;
  readonly metrics = new Metrics('kvfabric-metaserver');
  /** Bound addresses (the configured ones with a chosen port filled in), set by start(). */
  addr = '';
  httpAddr = '';
  private readonly opts: MetaserverAppOptions;
  private readonly logger: Logger;
  private readonly server: grpc.Server;
  private readonly sweepMetrics: SweepInstruments;
  /** GC pauses on the query path (kvfabric_metaserver_gc_pause_seconds). */
  private readonly gcPauses: GcPauseMetrics;
  private current: MetaStore;
  private http: HttpEndpoint | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(opts: MetaserverAppOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    const { config } = opts;
    this.current = this.newStore();
    this.sweepMetrics = registerStoreMetrics(this.metrics, () => this.store);
    this.gcPauses = observeGcPauses(this.metrics, 'metaserver');
    if (config.etcdEndpoints) {
      this.ha = new HaMode({
        endpoints: config.etcdEndpoints,
        prefix: config.etcdPrefix ?? '/kvfabric',
        ttlSecs: config.etcdLeaseTtlSecs ?? 5,
        replicaId: config.replicaId ?? '',
        tls: opts.etcdTls,
        logger: this.logger,
        metrics: this.metrics,
        onElected: (record) => this.elected(record),
        onDemoted: () => this.resetStore(),
      });
    } else {
      registerLeadershipMetrics(this.metrics, {
        serving: () => true,
        leaderChanges: () => 0,
        lastChangeMs: () => this.store.startedAtMs,
      });
    }
    const ha = this.ha;
    const rpcContext: RpcContext = {
      logger: this.logger.child({ component: 'rpc' }),
      instruments: rpcInstruments(this.metrics, 'metaserver'),
      guard: ha ? (method) => (ha.guard(), opts.guard?.(method)) : opts.guard,
      errorMetadata: ha?.errorMetadata,
    };
    const deps = {
      store: () => this.store,
      logger: this.logger,
      leader: () => this.leader(),
      leaderChanges: () => ha?.leaderChanges() ?? 0n,
      identify: opts.security?.identify ?? (() => undefined),
    };
    this.server = new grpc.Server({
      ...CHANNEL_OPTIONS,
      ...messageSizeOptions(METASERVER_MAX_REQUEST_BYTES, METASERVER_MAX_RESPONSE_BYTES),
      ...idleServerOptions(
        (config.maxConnectionIdleSecs ?? METASERVER_FLAGS['max-connection-idle-secs'].default) * 1000,
      ),
    });
    this.server.addService(MetaserverWire, metaserverServiceImpl(deps, rpcContext));
  }

  /** The index now serving; replaced by a fresh one on every election (and dropped on stepping down) in HA mode. */
  get store(): MetaStore {
    return this.current;
  }

  leader(): LeaderInfo {
    if (this.ha) return this.ha.leaderInfo();
    return {
      addr: this.addr,
      epoch: this.store.epoch,
      sinceMs: BigInt(this.store.startedAtMs),
      ha: false,
      replicaId: '',
    };
  }

  private newStore(epoch?: bigint): MetaStore {
    const { config } = this.opts;
    return new MetaStore({
      nodeStaleMs: config.nodeStaleSecs * 1000,
      ttlMs: config.ttlMinutes * 60_000,
      limits: {
        maxBlocksPerNode: config.maxBlocksPerNode ?? METASERVER_FLAGS['max-blocks-per-node'].default,
        maxIndexBytes: config.maxIndexMemory ?? METASERVER_FLAGS['max-index-memory'].default,
      },
      clock: this.opts.clock,
      epoch,
    });
  }

  /** Starts a fresh, empty index (under `epoch`, else a random one); calls already running finish on the old one. */
  private resetStore(epoch?: bigint): void {
    this.current = this.newStore(epoch);
  }

  /** Called by the election before the first RPC is let through: a fresh index under the new epoch. */
  private elected(record: LeaderRecord): void {
    this.resetStore(record.epoch);
    this.logger.info(
      { epoch: record.epoch.toString(), replica: record.replicaId, addr: record.addr },
      'leading with a fresh index; nodes re-advertise on the new epoch',
    );
  }

  async start(): Promise<void> {
    const { config } = this.opts;
    // before anything binds: a certificate etcd refuses or does not match is a configuration error, not an outage
    await this.ha?.checkTls();
    const { host } = parseHostPort(config.addr, 'addr');
    const port = await bindServer(this.server, config.addr, this.opts.security?.tls);
    this.addr = formatHostPort({ host, port });
    try {
      this.http = await startHttp({
        addr: config.httpAddr,
        metrics: this.metrics,
        health: () => this.health(),
        logger: this.logger,
        routes: { '/debug/gc-pauses': gcPausesRoute(this.gcPauses.log) },
      });
    } catch (err) {
      this.server.forceShutdown();
      throw err;
    }
    this.httpAddr = formatHostPort({ host: parseHostPort(config.httpAddr, 'http-addr').host, port: this.http.port });
    this.sweepTimer = setInterval(() => this.runSweep(), config.sweepIntervalSecs * 1000);
    this.sweepTimer.unref();
    this.ha?.start(config.advertiseAddr || this.addr);
    this.logger.info(
      {
        addr: this.addr,
        httpAddr: this.httpAddr,
        epoch: this.store.epoch.toString(),
        nodeStaleSecs: config.nodeStaleSecs,
        ttlMinutes: config.ttlMinutes,
        limits: this.store.limits,
        tls: this.opts.security?.tls ? identityUri(this.opts.security.tls.identity) : false,
      },
      'metaserver listening',
    );
  }

  health() {
    const ha = this.ha?.health();
    const { live, stale } = this.store.nodeCounts();
    return {
      ok: true,
      ...(ha ? { role: ha.role, ha } : {}),
      // a follower's own (empty) store is no one's index: report the leader's epoch
      epoch: ha && ha.role !== 'leader' ? (ha.leader?.epoch ?? '0') : this.store.epoch.toString(),
      nodes: { live, stale },
      blocks: this.store.blocks,
      owners: this.store.owners,
      namespaces: this.store.namespaceCount,
    };
  }

  /** One sweep: forgets nodes silent for the retention window, with their ownerships; skipped while one runs. */
  runSweep(): Promise<void> {
    if (this.sweeping) return this.sweeping;
    this.sweeping = (async () => {
      await yieldToLoop();
      const started = process.hrtime.bigint();
      const total = this.store.sweep();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.sweepMetrics.record(total, seconds);
      if (total.droppedSessions > 0) this.logger.info({ ...total, seconds }, 'sweep forgot silent nodes');
    })()
      .catch((err: unknown) => this.logger.error({ err }, 'sweep failed'))
      .finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.ha?.stop(); // resign first: another replica takes over while this one drains
    await this.sweeping;
    await shutdownServer(this.server, this.opts.drainMs ?? 5000);
    await this.http?.close();
    this.gcPauses.close();
    await this.metrics.shutdown();
  }
}
