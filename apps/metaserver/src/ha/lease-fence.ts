// Fencing by lease: the leader serves only while a local deadline, derived from its last successful keepalive,
// lies ahead. etcd can expire the lease no sooner than (time the keepalive was SENT) + TTL, and a new leader is
// elected only after that, so a deadline of sentAt + TTL - margin always ends before anyone else can lead.
// Time is the monotonic clock (performance.now): it keeps running while the process is paused (SIGSTOP), so a
// replica that wakes up past its deadline refuses before any timer or etcd answer had a chance to run.
import { performance } from 'node:perf_hooks';

export class LeaseFence {
  readonly ttlMs: number;
  /** Safety margin against clock rate differences and scheduling delays. */
  readonly marginMs: number;
  private readonly clock: () => number;
  private validUntil = Number.NEGATIVE_INFINITY;

  constructor(ttlMs: number, clock: () => number = () => performance.now()) {
    if (!(ttlMs > 0)) throw new RangeError(`lease TTL must be positive, got ${ttlMs}`);
    this.ttlMs = ttlMs;
    this.marginMs = Math.max(250, ttlMs / 4);
    this.clock = clock;
  }

  now(): number {
    return this.clock();
  }

  /** A grant or keepalive sent at `sentAt` (from `now()`) was acknowledged with `ttlMs` left. */
  renewed(sentAt: number, ttlMs = this.ttlMs): void {
    this.validUntil = Math.max(this.validUntil, sentAt + Math.min(ttlMs, this.ttlMs) - this.marginMs);
  }

  /** Leadership given up or known lost: invalid at once. */
  revoke(): void {
    this.validUntil = Number.NEGATIVE_INFINITY;
  }

  valid(now = this.clock()): boolean {
    return now < this.validUntil;
  }

  /** Milliseconds of validity left (0 when expired). */
  remainingMs(now = this.clock()): number {
    return Math.max(0, this.validUntil - now);
  }
}
