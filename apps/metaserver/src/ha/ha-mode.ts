// HA mode glue between the election and the metaserver app: the RPC guard (followers and fenced leaders refuse
// with NOT_LEADER), the leader-address trailer, LeaderInfo for answers, the /health section and the metrics.
import { hostname } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import type { LeaderInfo } from '@kvfabric/proto';
import { KvError } from '@kvfabric/common';
import {
  checkEtcdTls,
  connectEtcd,
  normalizePrefix,
  seqOf,
  type Etcd3,
  type LeaderRecord,
} from '@kvfabric/common/etcd';
import { type Logger, type Metrics } from '@kvfabric/common/observability';
import { LEADER_ADDR_KEY, type EtcdTls } from '@kvfabric/common/rpc';
import { LeaderElection } from './election.js';
import { registerLeadershipMetrics } from './metrics.js';

export interface HaModeOptions {
  endpoints: string[];
  prefix: string;
  ttlSecs: number;
  /** Empty: hostname-pid. */
  replicaId: string;
  /** TLS to etcd (readEtcdTls); absent: plaintext. */
  tls?: EtcdTls | undefined;
  logger: Logger;
  metrics: Metrics;
  onElected: (record: LeaderRecord) => void;
  onDemoted: (reason: string) => void;
}

export class HaMode {
  readonly replicaId: string;
  readonly prefix: string;
  private readonly opts: HaModeOptions;
  private readonly etcd: Etcd3;
  private election: LeaderElection | undefined;

  constructor(opts: HaModeOptions) {
    this.opts = opts;
    this.replicaId = opts.replicaId || `${hostname()}-${process.pid}`;
    this.prefix = normalizePrefix(opts.prefix);
    this.etcd = connectEtcd(opts.endpoints, {
      callTimeoutMs: Math.min(2000, (opts.ttlSecs * 1000) / 2),
      tls: opts.tls,
    });
    registerLeadershipMetrics(opts.metrics, {
      serving: () => this.serving(),
      leaderChanges: () => this.election?.leaderChanges ?? 0,
      lastChangeMs: () => this.election?.lastChangeMs,
      etcd: {
        reachable: () => this.election?.etcdReachable ?? false,
        leaseRemainingMs: () => (this.serving() ? this.election!.fence.remainingMs() : 0),
      },
    });
  }

  /**
   * With TLS to etcd: one bounded handshake per endpoint before campaigning, so a wrong --etcd-ca or a client
   * certificate etcd refuses fails the start (CONFIG_INVALID naming the flag and endpoint) instead of looking like an
   * etcd that never answers. Endpoints that do not answer are logged; the election keeps trying them.
   */
  async checkTls(): Promise<void> {
    if (!this.opts.tls) return;
    const unreachable = await checkEtcdTls(this.opts.endpoints, this.opts.tls, { field: 'etcd-endpoints' });
    if (unreachable.length > 0)
      this.opts.logger.warn({ etcd: unreachable }, 'etcd not reachable at start; campaigning anyway');
  }

  /** Starts campaigning; `advertiseAddr` is what the leader key will name. */
  start(advertiseAddr: string): void {
    this.election = new LeaderElection({
      etcd: this.etcd,
      prefix: this.prefix,
      ttlSecs: this.opts.ttlSecs,
      addr: advertiseAddr,
      replicaId: this.replicaId,
      logger: this.opts.logger,
      onElected: this.opts.onElected,
      onDemoted: this.opts.onDemoted,
    });
    this.election.start();
    this.opts.logger.info(
      {
        replica: this.replicaId,
        advertiseAddr,
        prefix: this.prefix,
        ttlSecs: this.opts.ttlSecs,
        etcd: this.opts.endpoints,
        etcdTls: this.opts.tls !== undefined,
      },
      'HA mode: campaigning',
    );
  }

  serving(): boolean {
    return this.election?.serving() ?? false;
  }

  /** The RPC guard: throws NOT_LEADER unless this replica leads with a valid lease. */
  readonly guard = (): void => {
    if (this.serving()) return;
    const leader = this.otherLeader();
    const why = leader
      ? `metaserver replica ${this.replicaId} is a follower; the leader is ${leader.replicaId} at ${leader.addr} (epoch ${leader.epoch})`
      : `metaserver replica ${this.replicaId} does not lead and knows no leader (etcd ${this.election?.etcdReachable ? 'reachable' : 'unreachable'})`;
    throw new KvError('NOT_LEADER', `not the leader: ${why}`);
  };

  /** Adds the leader's address to NOT_LEADER answers (never this replica's own). */
  readonly errorMetadata = (err: KvError): grpc.Metadata | undefined => {
    if (err.code !== 'NOT_LEADER') return undefined;
    const leader = this.otherLeader();
    if (!leader) return undefined;
    const md = new grpc.Metadata();
    md.set(LEADER_ADDR_KEY, leader.addr);
    return md;
  };

  /** LeaderInfo for ListNodes/GetStats (only answered while leading, so it names this replica). */
  leaderInfo(): LeaderInfo {
    const r = this.election?.leader;
    return {
      addr: r?.addr ?? '',
      epoch: r?.epoch ?? 0n,
      sinceMs: BigInt(r?.sinceMs ?? 0),
      ha: true,
      replicaId: r?.replicaId ?? '',
    };
  }

  /** Elections under this prefix minus the first: a cluster-wide count that survives replica restarts. */
  leaderChanges(): bigint {
    const r = this.election?.leader;
    return r ? (seqOf(r.epoch) > 0n ? seqOf(r.epoch) - 1n : 0n) : 0n;
  }

  health() {
    const e = this.election;
    const r = e?.leader;
    return {
      role: this.serving() ? 'leader' : 'follower',
      replica_id: this.replicaId,
      leader: r ? { addr: r.addr, epoch: r.epoch.toString(), since_ms: r.sinceMs, replica_id: r.replicaId } : null,
      etcd: {
        endpoints: this.opts.endpoints,
        prefix: this.prefix,
        tls: this.opts.tls !== undefined,
        reachable: e?.etcdReachable ?? false,
      },
      lease_remaining_ms: this.serving() ? Math.round(e!.fence.remainingMs()) : 0,
      leader_changes_seen: e?.leaderChanges ?? 0,
    };
  }

  /** Resigns (so another replica takes over at once) and closes the etcd client. */
  async stop(): Promise<void> {
    await this.election?.stop();
    this.etcd.close();
  }

  private otherLeader(): LeaderRecord | undefined {
    const r = this.election?.leader;
    return r && r.replicaId !== this.replicaId ? r : undefined;
  }
}
