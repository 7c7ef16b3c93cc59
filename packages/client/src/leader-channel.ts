// The leader-following channel to the metaserver, under MetaserverClient and PrefixQueryStream. A plain address is
// dialled as given. With an `etcd://` address (HA mode) a LeaderLocator watches the leader key and the channel is
// re-targeted when it changes; a call that finds no serving leader (none elected, the leader gone, a follower without
// a trailer) waits for one until its deadline, then fails METASERVER_UNAVAILABLE. A follower's
// `kvfabric-leader-addr` trailer is followed at once. etcd3 is loaded (dynamic import) only for an etcd:// address.
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { KvError, METASERVER_MAX_REQUEST_BYTES, METASERVER_MAX_RESPONSE_BYTES } from '@kvfabric/common';
import {
  CHANNEL_OPTIONS,
  ERROR_CODE_KEY,
  LEADER_ADDR_KEY,
  clientCredentials,
  fromGrpcError,
  messageSizeOptions,
  tlsChannelOptions,
  type EtcdTls,
  type TlsMaterial,
} from '@kvfabric/common/rpc';
import type { LeaderRecord } from '@kvfabric/common/etcd';
import type { LeaderLocator } from './leader-locator.js';
import { leaderTarget, parseEtcdAddr, resolveMetaserverAddr, type MetaserverAddress } from './metaserver-address.js';

export type LeaderListener = (leader: LeaderRecord | undefined, previous: LeaderRecord | undefined) => void;

export interface LeaderChannelOptions {
  channelOptions?: grpc.ChannelOptions;
  /** Mutual TLS: this process's certificate; the server must present a kvfabric://metaserver/... certificate. */
  tls?: TlsMaterial | undefined;
  /** etcd:// only: deadline of each etcd read of the leader key (ms). Default 1000. */
  etcdCallTimeoutMs?: number;
  /** etcd:// only: TLS to etcd (readEtcdTls); absent: plaintext. */
  etcdTls?: EtcdTls | undefined;
  /** Called when the channel moves to another target: calls in flight on the old one should be cancelled. */
  onRetarget?: () => void;
}

/** Redirects to a trailer's leader per call: one for a plain address (as before HA), a few while following etcd. */
const MAX_REDIRECTS = { direct: 1, etcd: 3 } as const;
/** While no leader serves, a call retries at least this often even when etcd names the same leader. */
const RETRY_PAUSE_MS = 200;

export class LeaderChannel {
  /** The address as given. */
  readonly addr: string;
  readonly address: MetaserverAddress;
  /** The target dialled now: the direct address, a trailer's leader, or the leader etcd names ('' before one is known). */
  private current: string;
  private client: grpc.Client | undefined;
  private readonly channelOptions: grpc.ChannelOptions;
  private readonly credentials: grpc.ChannelCredentials;
  private readonly opts: LeaderChannelOptions;
  private locator: LeaderLocator | undefined;
  private loading: Promise<LeaderLocator> | undefined;
  private readonly listeners = new Set<LeaderListener>();
  private closed = false;

  constructor(addr: string, opts: LeaderChannelOptions = {}) {
    this.addr = addr;
    this.address = resolveMetaserverAddr(addr);
    this.current = this.address.kind === 'direct' ? this.address.target : '';
    this.channelOptions = {
      ...CHANNEL_OPTIONS,
      // the metaserver's own limits, mirrored: what it may answer, what it accepts
      ...messageSizeOptions(METASERVER_MAX_RESPONSE_BYTES, METASERVER_MAX_REQUEST_BYTES),
      ...tlsChannelOptions(opts.tls),
      ...opts.channelOptions,
    };
    this.credentials = clientCredentials(opts.tls, { role: 'metaserver' });
    this.opts = opts;
  }

  /** The target dialled now (differs from `addr` after a redirect; with etcd:// the leader's address). */
  get target(): string {
    return this.current || this.addr;
  }

  /** etcd:// only: the leader as last read from etcd (undefined while none is elected or before the first read). */
  get leader(): LeaderRecord | undefined {
    return this.locator?.leader;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** etcd:// only: the locator following the leader key (loads etcd3 on first use; started by calls or listeners). */
  async leaderLocator(): Promise<LeaderLocator | undefined> {
    if (this.address.kind !== 'etcd') return undefined;
    const etcd = this.address.etcd;
    this.loading ??= import('./leader-locator.js').then(({ LeaderLocator }) => {
      const locator = new LeaderLocator(etcd, {
        callTimeoutMs: this.opts.etcdCallTimeoutMs ?? 1000,
        tls: this.opts.etcdTls,
        onChange: (leader, previous) => this.leaderChanged(leader, previous),
      });
      if (this.closed) locator.close();
      this.locator = locator;
      return locator;
    });
    return this.loading;
  }

  /** etcd:// only: calls `listener` on every change of the leader; starts following at once. Returns an unsubscribe. */
  onLeaderChange(listener: LeaderListener): () => void {
    if (this.address.kind !== 'etcd') return () => undefined;
    this.listeners.add(listener);
    if (!this.closed)
      void this.leaderLocator().then(
        (locator) => locator?.start(),
        () => undefined,
      );
    return () => this.listeners.delete(listener);
  }

  /** The client for the current target when one is known (undefined while etcd names no leader yet). */
  connected(): grpc.Client | undefined {
    if (this.closed) throw new KvError('METASERVER_UNAVAILABLE', `metaserver channel to ${this.addr} is closed`);
    if (!this.current) return undefined;
    this.client ??= new grpc.Client(this.current, this.credentials, this.channelOptions);
    return this.client;
  }

  /** The client to call now; with etcd:// it waits (until `deadline`) for a leader to be named. */
  async ready(deadline: number): Promise<grpc.Client> {
    const locator = this.closed ? undefined : await this.leaderLocator();
    if (locator && !this.closed) {
      locator.start();
      const leader = locator.leader ?? (await locator.waitForLeader(Math.max(0, deadline - Date.now())));
      if (!this.current) this.follow(leader.addr);
    }
    const client = this.connected();
    if (!client)
      throw new KvError('METASERVER_UNAVAILABLE', `etcd names no usable metaserver leader: ${this.leader?.addr}`);
    return client;
  }

  /**
   * Runs one call on the leader: `attempt` on the current client, following a follower's trailer, and with etcd://
   * retrying until the deadline while no leader serves. Every metaserver RPC is idempotent and a refused or
   * unconnected call was never applied, so retrying on the next leader is safe. Errors come back as KvError.
   */
  async call<T>(
    deadline: number,
    signal: AbortSignal | undefined,
    attempt: (client: grpc.Client) => Promise<T>,
  ): Promise<T> {
    let redirects = 0;
    for (;;) {
      // a plain address has its client at once: no turn through the async path (one call per query)
      const client = (this.address.kind === 'direct' && this.connected()) || (await this.ready(deadline));
      const tried = { target: this.current, leader: this.leader };
      try {
        return await attempt(client);
      } catch (err) {
        if (signal?.aborted) throw this.toKvError(err, client);
        if (redirects < MAX_REDIRECTS[this.address.kind] && this.followTrailer(err, tried.target)) {
          redirects++;
          continue;
        }
        if (this.address.kind !== 'etcd' || !noLeaderServed(err)) throw this.toKvError(err, client);
        // HA: nobody served (the leader is gone, or steps down, or a follower knows no leader): wait for etcd to name
        // another leader, or a short pause, and try again until the deadline.
        await this.leaderChangeOrPause(tried.leader, deadline);
        if (Date.now() >= deadline || this.closed) throw this.leaderless(err, client);
      }
    }
  }

  /** A follower's refusal naming the leader (not `tried`): re-targets there and says so. */
  followTrailer(err: unknown, tried = this.current): boolean {
    const named = trailerLeader(err);
    const target = named === undefined ? undefined : leaderTarget(named, LEADER_ADDR_KEY);
    if (target === undefined || target === tried) return false;
    this.retarget(target);
    return true;
  }

  /** Connection failures become METASERVER_UNAVAILABLE with a one-line message naming the target; the rest KvError. */
  toKvError(err: unknown, client: grpc.Client | undefined): KvError {
    if (err instanceof KvError) return err;
    const e = err as Partial<grpc.ServiceError>;
    const connected = client?.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
    const cannotConnect =
      e.code === grpc.status.UNAVAILABLE
        ? !e.metadata?.get(ERROR_CODE_KEY)?.length && !e.metadata?.get(LEADER_ADDR_KEY)?.length
        : e.code === grpc.status.DEADLINE_EXCEEDED && !connected;
    if (cannotConnect) {
      const detail = connectDetail(e.details || e.message || 'unavailable');
      return new KvError('METASERVER_UNAVAILABLE', `cannot connect to metaserver at ${this.target}: ${detail}`, {
        cause: err,
      });
    }
    return fromGrpcError(err);
  }

  /** Closes the channel and the etcd watch. Idempotent. */
  close(): void {
    this.closed = true;
    this.client?.close();
    this.client = undefined;
    this.locator?.close();
    this.listeners.clear();
  }

  private async leaderChangeOrPause(tried: LeaderRecord | undefined, deadline: number): Promise<void> {
    const until = Math.min(deadline, Date.now() + RETRY_PAUSE_MS);
    while (Date.now() < until && !this.closed && sameLeader(this.leader, tried)) {
      await sleep(Math.min(20, until - Date.now()));
    }
  }

  private leaderChanged(leader: LeaderRecord | undefined, previous: LeaderRecord | undefined): void {
    if (leader) this.follow(leader.addr);
    for (const listener of this.listeners) listener(leader, previous);
  }

  /** Re-targets to the leader etcd names, when it is a plain host:port. */
  private follow(addr: string): void {
    const target = leaderTarget(addr, LEADER_ADDR_KEY);
    if (target !== undefined) this.retarget(target);
  }

  private retarget(target: string): void {
    if (target === this.current) return;
    this.opts.onRetarget?.();
    this.client?.close();
    this.client = undefined;
    this.current = target;
  }

  /** HA: the deadline passed with no leader serving. Always METASERVER_UNAVAILABLE, saying what etcd knows. */
  private leaderless(err: unknown, client: grpc.Client): KvError {
    const last = this.toKvError(err, client);
    const locator = this.locator!;
    const where = `etcd ${locator.target.endpoints.join(',')} key ${locator.key}`;
    const leader = locator.leader;
    const known = leader
      ? `leader ${leader.replicaId || '?'} at ${leader.addr} (epoch ${leader.epoch}) per ${where}`
      : `no leader in ${where}`;
    const etcd = locator.lastError ? `; etcd: ${locator.lastError.message}` : '';
    return new KvError('METASERVER_UNAVAILABLE', `no metaserver leader serving: ${known}: ${last.message}${etcd}`, {
      cause: err,
    });
  }
}

/**
 * One-shot resolution for short-lived users (CLI): a plain host:port is returned as is; an etcd:// address is read
 * once (over TLS with `etcdTls`) and the leader's address returned.
 */
export async function resolveLeaderAddr(addr: string, timeoutMs = 5000, etcdTls?: EtcdTls): Promise<string> {
  const target = parseEtcdAddr(addr);
  if (!target) return addr;
  const { LeaderLocator } = await import('./leader-locator.js');
  const locator = new LeaderLocator(target, { callTimeoutMs: Math.min(timeoutMs, 2000), tls: etcdTls });
  try {
    return (await locator.waitForLeader(timeoutMs)).addr;
  } finally {
    locator.close();
  }
}

/** The leader's address from a follower's refusal (UNAVAILABLE with the kvfabric-leader-addr trailer). */
function trailerLeader(err: unknown): string | undefined {
  const e = err as Partial<grpc.ServiceError> | undefined;
  if (e?.code !== grpc.status.UNAVAILABLE) return undefined;
  const value = e.metadata?.get(LEADER_ADDR_KEY)?.[0];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** An answer that means "no leader served this call": not connected, refused as not-leader, or cut by a re-target. */
function noLeaderServed(err: unknown): boolean {
  if (err instanceof KvError) return err.code === 'METASERVER_UNAVAILABLE';
  const e = err as Partial<grpc.ServiceError>;
  if (e?.code === grpc.status.CANCELLED) return true; // cancelled by a leader change (a caller's abort is checked first)
  if (e?.code !== grpc.status.UNAVAILABLE) return false;
  const kv = e.metadata?.get(ERROR_CODE_KEY)?.[0];
  return kv === undefined || kv === 'NOT_LEADER' || kv === 'METASERVER_UNAVAILABLE';
}

function sameLeader(a: LeaderRecord | undefined, b: LeaderRecord | undefined): boolean {
  return a?.epoch === b?.epoch && a?.addr === b?.addr;
}

/** grpc-js connect failures, reduced to their cause: "connect ECONNREFUSED 127.0.0.1:1". */
function connectDetail(text: string): string {
  const detail = text
    .replace(/\s+/g, ' ')
    .replace(/\s*Resolution note:.*$/, '')
    .replace(/^No connection established\. Last error: /, '')
    .replace(/\bError: /g, '')
    .replace(/[.\s]+$/, '')
    .trim();
  return detail || 'unavailable';
}
