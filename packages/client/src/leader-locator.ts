// Finds the metaserver leader through etcd and follows it. The leader key PREFIX/leader holds a LeaderRecord (its
// contract: @kvfabric/common/etcd, written by the metaserver's election), attached to the leader's etcd lease. The
// locator reads it, watches it (changes arrive within milliseconds) and re-reads it every second as a safety net, so
// a change is reported within a second even when the watch is broken. This module loads etcd3: the client imports
// it only when an etcd:// address is used (LeaderChannel loads it with a dynamic import).
import { KvError, invalid } from '@kvfabric/common';
import {
  connectEtcd,
  decodeLeaderRecord,
  leaderKey,
  type Etcd3,
  type LeaderRecord,
  type Watcher,
} from '@kvfabric/common/etcd';
import type { EtcdTls } from '@kvfabric/common/rpc';
import { parseEtcdAddr, type EtcdTarget } from './metaserver-address.js';

export interface LeaderLocatorOptions {
  /** Deadline of each etcd read. Default 1000 ms. */
  callTimeoutMs?: number;
  /** Safety-net re-read period. Default 1000 ms. */
  resyncMs?: number;
  /** TLS to etcd (readEtcdTls from --etcd-ca/--etcd-cert/--etcd-key); absent: plaintext. */
  tls?: EtcdTls | undefined;
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
  /** etcd has answered a read or sent a watch event: an absent leader key is known to be absent. */
  private answered = false;
  private timer: NodeJS.Timeout | undefined;
  private watcher: Watcher | undefined;
  private readonly waiters = new Set<() => void>();
  private closed = false;

  constructor(target: EtcdTarget | string, opts: LeaderLocatorOptions = {}) {
    const t = typeof target === 'string' ? parseEtcdAddr(target) : target;
    if (!t) throw invalid('metaserver-addr', 'expected etcd://host:port[,host:port...][/prefix]', target);
    this.target = t;
    this.key = leaderKey(t.prefix);
    this.opts = opts;
    this.etcd = connectEtcd(t.endpoints, {
      callTimeoutMs: opts.callTimeoutMs ?? 1000,
      tls: opts.tls,
      field: 'metaserver-addr',
    });
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
      if (left <= 0 || this.closed) throw this.unavailable(timeoutMs);
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

  private unavailable(timeoutMs: number): KvError {
    const where = `etcd ${this.target.endpoints.join(',')} key ${this.key}`;
    const cannot = `cannot find the metaserver leader: ${where}`;
    if (this.lastError) {
      return new KvError('METASERVER_UNAVAILABLE', `${cannot}: ${this.lastError.message}`, { cause: this.lastError });
    }
    if (!this.answered)
      return new KvError('METASERVER_UNAVAILABLE', `${cannot}: etcd did not answer within ${timeoutMs} ms`);
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
    this.answered = true;
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
