// Leader election over etcd with fencing. One loop per replica:
//   follower:  read P/leader; while one exists, watch it (and re-read every second as a safety net);
//   candidate: grant a lease, then one transaction: "P/leader does not exist and P/epoch is as read" →
//              put P/epoch = seq+1 and P/leader = {addr, epoch, since_ms, replica_id} on the lease;
//   leader:    keep the lease alive every TTL/4 with one-shot keepalives whose send time feeds the fence
//              (lease-fence.ts); leadership ends when the fence runs out, etcd says the lease is gone, or the
//              watch shows P/leader deleted or replaced.
// A lease that may hold a leader key we no longer act on (lost leadership, a lost race, a transaction whose outcome
// is unknown) is revoked as soon as etcd answers, so a replica that stepped down during an etcd outage does not
// block the next election for a whole TTL.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@kvfabric/common/observability';
import {
  decodeLeaderRecord,
  encodeLeaderRecord,
  epochFor,
  epochKey,
  leaderKey,
  type Etcd3,
  type IKeyValue,
  type LeaderRecord,
  type Watcher,
} from '@kvfabric/common/etcd';
import { LeaseFence } from './lease-fence.js';

export type Role = 'follower' | 'leader';

export interface ElectionOptions {
  etcd: Etcd3;
  prefix: string;
  ttlSecs: number;
  /** Published in the leader key: what nodes and the CLI dial. */
  addr: string;
  replicaId: string;
  logger: Logger;
  /** Monotonic clock for the fence (ms). */
  clock?: () => number;
  /** Wall clock for `since_ms` (ms since the Unix epoch). */
  wallClock?: () => number;
  /** Runs synchronously after winning and before serving: start a fresh store for `record.epoch`. */
  onElected: (record: LeaderRecord) => void;
  /** Runs when this replica stops leading (it has already stopped serving). */
  onDemoted: (reason: string) => void;
}

interface Observed {
  record: LeaderRecord | undefined;
  revision: bigint;
}

export class LeaderElection {
  readonly fence: LeaseFence;
  role: Role = 'follower';
  /** The leader as last seen in etcd (or this replica while it leads). */
  leader: LeaderRecord | undefined;
  /** Whether the last etcd call succeeded. */
  etcdReachable = false;
  /** Leader changes seen by this replica (the first observation not counted). */
  leaderChanges = 0;
  /** Wall clock of the last leader change seen (or of the first observation). */
  lastChangeMs: number | undefined;
  private readonly opts: ElectionOptions;
  private readonly log: Logger;
  private readonly keys: { leader: string; epoch: string };
  private readonly wallClock: () => number;
  private readonly periodMs: number;
  private observedRevision = -1n;
  private leaseId: string | undefined;
  private electedRevision = 0n;
  private readonly staleLeases = new Set<string>();
  private watcher: Watcher | undefined;
  private wakeUp: (() => void) | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private firstObservation = true;

  constructor(opts: ElectionOptions) {
    if (!Number.isInteger(opts.ttlSecs) || opts.ttlSecs < 1)
      throw new RangeError(`etcd lease TTL must be a whole number of seconds >= 1, got ${opts.ttlSecs}`);
    this.opts = opts;
    this.log = opts.logger.child({ component: 'election', replica: opts.replicaId });
    this.fence = new LeaseFence(opts.ttlSecs * 1000, opts.clock);
    this.keys = { leader: leaderKey(opts.prefix), epoch: epochKey(opts.prefix) };
    this.wallClock = opts.wallClock ?? Date.now;
    this.periodMs = Math.max(100, (opts.ttlSecs * 1000) / 4);
  }

  /** True only while this replica leads and its lease is certainly still valid. Checked before every RPC. */
  serving(): boolean {
    return this.role === 'leader' && this.fence.valid();
  }

  /** Starts watching and campaigning; returns at once (winning is reported through `onElected`). */
  start(): void {
    if (this.loop) return;
    this.watcher = this.opts.etcd.watch().key(this.keys.leader).watcher();
    this.watcher.on('put', (kv) => this.onWatch(kv, true));
    this.watcher.on('delete', (kv) => this.onWatch(kv, false));
    this.watcher.on('connected', () => this.wake());
    this.watcher.on('disconnected', () => this.wake());
    this.watcher.on('error', (err) => this.log.debug({ err }, 'leader watch error'));
    this.loop = this.run();
  }

  /** Steps down (revoking the lease so another replica takes over at once) and stops. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.role === 'leader') this.demote('stopping');
    this.wake();
    await this.loop;
    await this.revokeStale(1000).catch((err: unknown) =>
      this.log.warn({ err: (err as Error)?.message }, 'could not revoke the lease on stop; it expires by itself'),
    );
    await this.watcher?.cancel().catch(() => undefined);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.revokeStale();
        const current = await this.read();
        if (current.present) {
          await this.idle(Math.min(1000, this.periodMs * 2));
          continue;
        }
        if (await this.campaign(current.seq, current.epochModRevision)) await this.lead();
      } catch (err) {
        this.unreachable(err);
        await this.idle(250);
      }
    }
  }

  /** Reads the leader key and the epoch counter (the campaign transaction re-checks both). */
  private async read(): Promise<{ present: boolean; seq: bigint; epochModRevision: string }> {
    const { etcd } = this.opts;
    const [leaderRes, epochRes] = await Promise.all([
      etcd.get(this.keys.leader).exec(),
      etcd.get(this.keys.epoch).exec(),
    ]);
    this.reachable();
    const leaderKv = leaderRes.kvs[0];
    const epochKv = epochRes.kvs[0];
    this.observe({ record: leaderKv ? this.decode(leaderKv) : undefined, revision: BigInt(leaderRes.header.revision) });
    return {
      present: leaderKv !== undefined,
      seq: epochKv ? BigInt(epochKv.value.toString()) : 0n,
      epochModRevision: epochKv?.mod_revision ?? '0',
    };
  }

  private async campaign(seq: bigint, epochModRevision: string): Promise<boolean> {
    const { etcd, ttlSecs } = this.opts;
    const sentAt = this.fence.now();
    const grant = await etcd.leaseClient.leaseGrant({ TTL: ttlSecs, ID: 0 });
    const leaseId = grant.ID;
    const record: LeaderRecord = {
      addr: this.opts.addr,
      epoch: epochFor(seq + 1n),
      sinceMs: this.wallClock(),
      replicaId: this.opts.replicaId,
    };
    let result;
    try {
      result = await etcd
        .if(this.keys.leader, 'Create', '==', 0)
        .and(this.keys.epoch, 'Mod', '==', epochModRevision)
        .then(
          etcd.put(this.keys.epoch).value((seq + 1n).toString()),
          etcd.put(this.keys.leader).value(encodeLeaderRecord(record)).lease(leaseId),
        )
        .commit();
    } catch (err) {
      this.staleLeases.add(leaseId); // the put may have landed: revoke to be sure nobody waits on it
      throw err;
    }
    if (!result.succeeded) {
      this.staleLeases.add(leaseId);
      return false;
    }
    this.fence.renewed(sentAt, Number(grant.TTL) * 1000);
    this.leaseId = leaseId;
    this.electedRevision = BigInt(result.header.revision);
    this.observe({ record, revision: this.electedRevision });
    this.opts.onElected(record); // fresh store before the first RPC is let through
    this.role = 'leader';
    this.log.info(
      {
        epoch: record.epoch.toString(),
        seq: (seq + 1n).toString(),
        lease: leaseId,
        validForMs: Math.round(this.fence.remainingMs()),
      },
      'elected leader',
    );
    return true;
  }

  /** Keeps the lease alive until leadership ends. */
  private async lead(): Promise<void> {
    while (!this.stopped && this.role === 'leader') {
      if (!this.fence.valid()) {
        this.demote('no keepalive succeeded within the fence window (etcd unreachable or slow)');
        return;
      }
      const sentAt = this.fence.now();
      try {
        const ttlSecs = await this.keepAliveOnce(
          this.leaseId!,
          Math.max(50, Math.min(this.periodMs * 2, this.fence.remainingMs())),
        );
        this.reachable();
        if (ttlSecs <= 0) {
          this.demote('etcd reports the lease expired');
          return;
        }
        if (this.role === 'leader') this.fence.renewed(sentAt, ttlSecs * 1000);
      } catch (err) {
        this.unreachable(err);
      }
      const wait = Math.min(sentAt + this.periodMs - this.fence.now(), this.fence.remainingMs());
      if (wait > 0) await this.idle(wait);
    }
  }

  /** One keepalive round trip; resolves with the TTL etcd reports (<= 0: the lease is gone). */
  private async keepAliveOnce(leaseId: string, timeoutMs: number): Promise<number> {
    const stream = await this.opts.etcd.leaseClient.leaseKeepAlive({ deadline: Date.now() + timeoutMs });
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        stream.end();
        fn();
      };
      const timer = setTimeout(
        () => settle(() => reject(new Error(`keepalive timed out after ${timeoutMs} ms`))),
        timeoutMs + 50,
      );
      stream.on('data', (res: { TTL: string }) => settle(() => resolve(Number(res.TTL))));
      stream.on('error', (err: unknown) => settle(() => reject(err)));
      stream.write({ ID: leaseId });
    });
  }

  private demote(reason: string): void {
    if (this.role !== 'leader') return;
    this.fence.revoke();
    this.role = 'follower';
    if (this.leaseId) this.staleLeases.add(this.leaseId);
    this.leaseId = undefined;
    this.log.warn({ reason, epoch: this.leader?.epoch.toString() }, 'stepped down');
    this.opts.onDemoted(reason);
    this.wake();
  }

  private async revokeStale(timeoutMs?: number): Promise<void> {
    for (const id of [...this.staleLeases]) {
      try {
        await this.opts.etcd.leaseClient.leaseRevoke(
          { ID: id },
          timeoutMs ? { deadline: Date.now() + timeoutMs } : undefined,
        );
        this.staleLeases.delete(id);
      } catch (err) {
        if (
          /not found|LeaseInvalid|lease not found/i.test(String((err as Error)?.message)) ||
          (err as Error)?.name === 'EtcdLeaseInvalidError'
        ) {
          this.staleLeases.delete(id);
        } else {
          throw err;
        }
      }
    }
  }

  private onWatch(kv: IKeyValue, put: boolean): void {
    const revision = BigInt(kv.mod_revision);
    if (this.role === 'leader' && revision > this.electedRevision) {
      const record = put ? this.decode(kv) : undefined;
      if (record?.epoch !== this.leader?.epoch)
        this.demote(put ? 'leader key now names another replica' : 'leader key deleted');
    }
    this.observe({ record: put ? this.decode(kv) : undefined, revision });
    this.wake();
  }

  private observe(o: Observed): void {
    if (o.revision < this.observedRevision) return;
    this.observedRevision = o.revision;
    if (this.role === 'leader' && o.record?.epoch !== this.leader?.epoch) return; // demote() decides, not a stale read
    const changed = o.record?.epoch !== this.leader?.epoch;
    this.leader = o.record;
    if (!changed || !o.record) return;
    if (this.firstObservation) this.firstObservation = false;
    else this.leaderChanges++;
    this.lastChangeMs = this.wallClock();
    this.log.info(
      { leader: o.record.addr, epoch: o.record.epoch.toString(), replica: o.record.replicaId },
      'leader observed',
    );
  }

  private decode(kv: IKeyValue): LeaderRecord | undefined {
    try {
      return decodeLeaderRecord(kv.value.toString());
    } catch (err) {
      this.log.error({ err, key: kv.key.toString() }, 'ignoring a malformed leader key');
      return undefined;
    }
  }

  private reachable(): void {
    if (!this.etcdReachable) this.log.info('etcd reachable');
    this.etcdReachable = true;
  }

  private unreachable(err: unknown): void {
    if (this.stopped) return;
    if (this.etcdReachable) this.log.warn({ err: (err as Error)?.message ?? String(err) }, 'etcd unreachable');
    else this.log.debug({ err: (err as Error)?.message ?? String(err) }, 'etcd still unreachable');
    this.etcdReachable = false;
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  /** Sleeps up to `ms`, returning early on a watch event, a step-down or stop. */
  private async idle(ms: number): Promise<void> {
    if (this.stopped) return;
    const ac = new AbortController();
    const woken = new Promise<void>((resolve) => (this.wakeUp = resolve));
    await Promise.race([woken, sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined)]);
    ac.abort();
  }
}
