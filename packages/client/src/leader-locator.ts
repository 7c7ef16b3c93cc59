// Finds the metaserver leader through etcd and follows it. A metaserver address is either a plain `host:port` or
// `etcd://host:port[,host:port...][/prefix]` (prefix default /kvfabric). The leader key PREFIX/leader holds
//   {"addr":"10.0.0.5:50056","epoch":"4294967297","since_ms":1700000000000,"replica_id":"metaserver-0"}
// (written by apps/metaserver/src/ha/leader-record.ts), attached to the leader's etcd lease. The locator reads
// it, watches it (changes arrive within milliseconds) and re-reads it every second as a safety net, so a change is
// reported within a second even when the watch is broken.
import { Etcd3, type IOptions } from 'etcd3';
import { KvError, invalid, parseHostPort } from '@kvfabric/common';

export const DEFAULT_ETCD_PREFIX = '/kvfabric';

export interface EtcdTarget {
  /** "host:port" each. */
  endpoints: string[];
  /** Normalized: "/kvfabric". */
  prefix: string;
}

export interface LeaderRecord {
  addr: string;
  epoch: bigint;
  sinceMs: number;
  replicaId: string;
}

/** `etcd://h:p,h:p/prefix` → endpoints and prefix; undefined when `addr` is not an etcd:// address. */
export function parseEtcdAddr(addr: string, field = 'metaserver-addr'): EtcdTarget | undefined {
  const text = (addr ?? '').trim();
  const m = /^etcd:\/\/([^/]*)(\/.*)?$/i.exec(text);
  if (!m) return undefined;
  const hosts = m[1]!.split(',').map((h) => h.trim()).filter((h) => h.length > 0);
  if (hosts.length === 0) throw invalid(field, 'expected etcd://host:port[,host:port...][/prefix]', addr);
  for (const h of hosts) {
    try {
      const { port } = parseHostPort(h, field);
      if (port === 0) throw new Error('port 0');
    } catch {
      throw invalid(field, `expected etcd://host:port[,host:port...][/prefix]; bad endpoint ${JSON.stringify(h)}`, addr);
    }
  }
  const path = (m[2] ?? '').replace(/\/+$/, '');
  if (path !== '' && !/^\/[A-Za-z0-9._:/-]+$/.test(path)) throw invalid(field, 'expected an etcd key prefix like /kvfabric after the endpoints', addr);
  return { endpoints: hosts, prefix: path === '' ? DEFAULT_ETCD_PREFIX : path };
}

/** `--etcd-endpoints` + `--etcd-prefix` in the etcd:// form. */
export function etcdAddr(endpoints: readonly string[], prefix = DEFAULT_ETCD_PREFIX): string {
  const hosts = endpoints.map((e) => e.trim().replace(/^https?:\/\//, '').replace(/\/$/, ''));
  const p = prefix.replace(/\/+$/, '');
  return `etcd://${hosts.join(',')}${p === '' ? '' : p.startsWith('/') ? p : `/${p}`}`;
}

export function decodeLeaderRecord(text: string): LeaderRecord {
  let o: Record<string, unknown>;
  try {
    o = (JSON.parse(text) ?? {}) as Record<string, unknown>;
  } catch {
    throw new KvError('METASERVER_UNAVAILABLE', `leader key: expected JSON, got ${JSON.stringify(text.slice(0, 80))}`);
  }
  const ok =
    typeof o.addr === 'string' && o.addr !== '' &&
    typeof o.epoch === 'string' && /^[1-9][0-9]{0,19}$/.test(o.epoch) &&
    typeof o.since_ms === 'number' && Number.isSafeInteger(o.since_ms) &&
    typeof o.replica_id === 'string';
  if (!ok) throw new KvError('METASERVER_UNAVAILABLE', `leader key: expected {addr, epoch, since_ms, replica_id}, got ${text.slice(0, 200)}`);
  return { addr: o.addr as string, epoch: BigInt(o.epoch as string), sinceMs: o.since_ms as number, replicaId: o.replica_id as string };
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type Backoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;
const passThrough = {
  execute: <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T) =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })),
} as unknown as Policy;
const watchBackoff = { duration: 250, next: () => watchBackoff } as unknown as Backoff;

/** etcd client with per-call deadlines and no hidden retries or circuit breakers (the locator retries itself). */
function connect(endpoints: string[], callTimeoutMs: number): Etcd3 {
  return new Etcd3({
    hosts: endpoints,
    dialTimeout: callTimeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: { host: () => passThrough, global: passThrough, watchBackoff },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.min_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.use_local_subchannel_pool': 1,
    },
  });
}

export interface LeaderLocatorOptions {
  /** Deadline of each etcd read. Default 1000 ms. */
  callTimeoutMs?: number;
  /** Safety-net re-read period. Default 1000 ms. */
  resyncMs?: number;
  /** Called on every change of the leader (undefined: none elected right now). */
  onChange?: (leader: LeaderRecord | undefined, previous: LeaderRecord | undefined) => void;
}

export class LeaderLocator {
  readonly target: EtcdTarget;
  readonly key: string;
  /** The leader as last read; undefined before the first read or while none is elected. */
  leader: LeaderRecord | undefined;
  /** The last etcd problem, cleared by the next successful read. */
  lastError: Error | undefined;
  private readonly etcd: Etcd3;
  private readonly opts: LeaderLocatorOptions;
  private revision = -1n;
  private timer: NodeJS.Timeout | undefined;
  private watcher: ReturnType<ReturnType<Etcd3['watch']>['watcher']> | undefined;
  private readonly waiters = new Set<() => void>();
  private closed = false;

  constructor(target: EtcdTarget | string, opts: LeaderLocatorOptions = {}) {
    const t = typeof target === 'string' ? parseEtcdAddr(target) : target;
    if (!t) throw invalid('metaserver-addr', 'expected etcd://host:port[,host:port...][/prefix]', target);
    this.target = t;
    this.key = `${t.prefix}/leader`;
    this.opts = opts;
    this.etcd = connect(t.endpoints, opts.callTimeoutMs ?? 1000);
  }

  /** Starts watching and the periodic re-read; the first read starts at once. */
  start(): this {
    if (this.watcher || this.closed) return this;
    this.watcher = this.etcd.watch().key(this.key).watcher();
    this.watcher.on('put', (kv) => this.apply(BigInt(kv.mod_revision), this.decode(kv.value.toString())));
    this.watcher.on('delete', (kv) => this.apply(BigInt(kv.mod_revision), undefined));
    this.watcher.on('connected', () => void this.refresh());
    this.watcher.on('error', (err) => (this.lastError = err));
    this.timer = setInterval(() => void this.refresh(), this.opts.resyncMs ?? 1000);
    this.timer.unref();
    void this.refresh();
    return this;
  }

  /** Reads the leader key once; resolves with the leader (or undefined when none is elected). */
  async refresh(): Promise<LeaderRecord | undefined> {
    try {
      const res = await this.etcd.get(this.key).exec();
      this.lastError = undefined;
      const kv = res.kvs[0];
      this.apply(BigInt(res.header.revision), kv ? this.decode(kv.value.toString()) : undefined);
    } catch (err) {
      this.lastError = err as Error;
    }
    this.notify();
    return this.leader;
  }

  /** Resolves with the leader once one is known; METASERVER_UNAVAILABLE after `timeoutMs`. */
  async waitForLeader(timeoutMs = 5000): Promise<LeaderRecord> {
    const deadline = Date.now() + timeoutMs;
    if (!this.watcher) await this.refresh();
    while (!this.leader) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) throw this.unavailable();
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(left, 250));
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.waiters.add(done);
      });
      if (!this.watcher) await this.refresh();
    }
    return this.leader;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    void this.watcher?.cancel().catch(() => undefined);
    this.etcd.close();
    this.notify();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private unavailable(): KvError {
    const where = `etcd ${this.target.endpoints.join(',')} key ${this.key}`;
    if (this.lastError) return new KvError('METASERVER_UNAVAILABLE', `cannot find the metaserver leader: ${where}: ${this.lastError.message}`, { cause: this.lastError });
    return new KvError('METASERVER_UNAVAILABLE', `no metaserver leader elected (${where} is empty)`);
  }

  private decode(text: string): LeaderRecord | undefined {
    try {
      return decodeLeaderRecord(text);
    } catch (err) {
      this.lastError = err as Error;
      return undefined;
    }
  }

  private apply(revision: bigint, leader: LeaderRecord | undefined): void {
    if (revision < this.revision) return; // an older view than one already applied
    this.revision = revision;
    const previous = this.leader;
    this.leader = leader;
    if (previous?.epoch !== leader?.epoch || previous?.addr !== leader?.addr) this.opts.onChange?.(leader, previous);
    this.notify();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
    this.waiters.clear();
  }
}

/**
 * One-shot resolution for short-lived users (CLI): a plain host:port is returned as is; an etcd:// address is read
 * once and the leader's address returned.
 */
export async function resolveLeaderAddr(addr: string, timeoutMs = 5000): Promise<string> {
  const target = parseEtcdAddr(addr);
  if (!target) return addr;
  const locator = new LeaderLocator(target, { callTimeoutMs: Math.min(timeoutMs, 2000) });
  try {
    return (await locator.waitForLeader(timeoutMs)).addr;
  } finally {
    locator.close();
  }
}
