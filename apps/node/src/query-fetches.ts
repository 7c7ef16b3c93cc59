// The fetches that queries start: when a query misses blocks that the SSD tier or peers may hold, the first call
// with a request id starts one fetch (of the engine, for that request id) and answers LOADING; later calls with
// the same request id find it, wait for it (wait_ms) or, once it finished, take its outcome. A finished fetch
// nobody comes back for expires with the lease TTL. Pure bookkeeping: the fetching itself is the `Fetcher`'s.
import type { Logger } from '@kvfabric/common/observability';
import type { NamespaceInfo } from './namespaces.js';

/** What one fetch brought in, by source. */
export interface FetchOutcome {
  ssd: number;
  remote: number;
}

export interface FetchRequest {
  ns: NamespaceInfo;
  packed: Buffer;
  hashLen: number;
  /** The first block to fetch (the local prefix hit). */
  from: number;
  count: number;
}

/** Fetches a missing suffix of a query from the SSD tier or peers into the local index. */
export interface Fetcher {
  /** Resolves when whatever could be fetched is sealed locally; never rejects for a miss. */
  fetch(req: FetchRequest): Promise<FetchOutcome>;
}

/** One fetch started by a query. */
export interface QueryFetch {
  readonly done: boolean;
  /** The local prefix hit when the fetch started. */
  readonly local: number;
  readonly outcome: FetchOutcome;
}

interface PendingFetch extends QueryFetch {
  done: boolean;
  outcome: FetchOutcome;
  expiresAtMs: number;
  /** Queries waiting (wait_ms) for this fetch: each is woken once when it finishes. */
  waiters: Set<() => void>;
}

export interface QueryFetchesOptions {
  fetcher: Fetcher;
  /** How long a finished fetch's outcome is kept for its request id. */
  ttlMs: number;
  now: () => number;
  logger: Logger;
}

export class QueryFetches {
  /** By engine id and request id. */
  private readonly pending = new Map<string, PendingFetch>();
  /** Per instance id, the wake-ups of its queries waiting for a fetch (woken early when the instance goes away). */
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(private readonly opts: QueryFetchesOptions) {}

  get size(): number {
    return this.pending.size;
  }

  /** The fetch of (engine, request id), running or finished, if any. */
  get(engineId: string, requestId: string): QueryFetch | undefined {
    return this.pending.get(fetchKey(engineId, requestId));
  }

  /** Starts the fetch of (engine, request id); `req.packed` must stay unchanged until it finishes. */
  start(engineId: string, requestId: string, req: FetchRequest): QueryFetch {
    const started: PendingFetch = {
      done: false,
      local: req.from,
      outcome: { ssd: 0, remote: 0 },
      expiresAtMs: this.opts.now() + this.opts.ttlMs,
      waiters: new Set(),
    };
    this.pending.set(fetchKey(engineId, requestId), started);
    const finish = (): void => {
      started.done = true;
      for (const wake of [...started.waiters]) wake();
    };
    this.opts.fetcher.fetch(req).then(
      (outcome) => {
        started.outcome = outcome;
        finish();
      },
      (err: unknown) => {
        this.opts.logger.warn({ err, namespace: req.ns.name }, 'fetch failed; answering the local hit');
        finish();
      },
    );
    return started;
  }

  /** Forgets the fetch of (engine, request id): its outcome was taken. */
  forget(engineId: string, requestId: string): void {
    this.pending.delete(fetchKey(engineId, requestId));
  }

  /** Resolves when the fetch finishes, the instance is unregistered, or after `ms`, whichever comes first. */
  wait(fetch: QueryFetch, instanceId: string, ms: number): Promise<void> {
    const p = fetch as PendingFetch;
    let mine = this.waiting.get(instanceId);
    if (!mine) this.waiting.set(instanceId, (mine = new Set()));
    const set = mine;
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        p.waiters.delete(wake);
        set.delete(wake);
        if (set.size === 0 && this.waiting.get(instanceId) === set) this.waiting.delete(instanceId);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      p.waiters.add(wake);
      set.add(wake);
    });
  }

  /** Wakes the instance's waiting queries (it went away: they answer INSTANCE_UNKNOWN). */
  wakeInstance(instanceId: string): void {
    const waiting = this.waiting.get(instanceId);
    if (waiting) for (const wake of [...waiting]) wake();
  }

  /** Forgets every fetch of an engine that has no instance left. */
  dropEngine(engineId: string): void {
    const prefix = engineId + '\0';
    for (const key of this.pending.keys()) if (key.startsWith(prefix)) this.pending.delete(key);
  }

  /** Forgets fetches whose outcome nobody came back for within the TTL. */
  sweep(): void {
    const now = this.opts.now();
    for (const [key, p] of this.pending) if (p.expiresAtMs <= now) this.pending.delete(key);
  }
}

function fetchKey(engineId: string, requestId: string): string {
  return `${engineId}\0${requestId}`;
}
