// The one etcd3 client setup, for the leader election (apps/metaserver/src/ha) and the leader locator
// (packages/client): every unary call has a deadline, no hidden retries or circuit breakers (callers retry on their
// own schedule, and a breaker that stays open for 5 s would delay recovery after etcd comes back), fast gRPC
// reconnects and a constant watch-reconnect backoff.
import { Etcd3, type IOptions } from 'etcd3';
import { echo } from '../echo.js';
import { KvError } from '../errors.js';

/** The etcd3 types users of the connection need (they depend on this module, not on etcd3). */
export type { Etcd3, IKeyValue, Watcher } from 'etcd3';

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type Backoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** Runs the call once; etcd3 only ever calls `execute` on its policies. */
const passThrough = {
  execute: <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T) =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })),
} as unknown as Policy;

function constantBackoff(ms: number): Backoff {
  const b = { duration: ms, next: () => b };
  return b as unknown as Backoff;
}

export interface EtcdConnectOptions {
  /** Deadline of each unary call (range, txn, lease grant/revoke) and of dialling. Default 2000 ms. */
  callTimeoutMs?: number;
  /** Delay before a broken watch reconnects. Default 250 ms. */
  watchRetryMs?: number;
}

/** "http://h:p" or "h:p" → "h:p"; CONFIG_INVALID on anything else. */
export function etcdHost(endpoint: string, field = 'etcd-endpoints'): string {
  const m = /^(?:https?:\/\/)?([^/\s]+?)\/?$/.exec(endpoint.trim());
  if (!m || !/:\d{1,5}$/.test(m[1]!)) {
    throw new KvError('CONFIG_INVALID', `${field}: expected host:port or http://host:port, got ${echo(endpoint)}`);
  }
  return m[1]!;
}

export function connectEtcd(endpoints: readonly string[], opts: EtcdConnectOptions = {}): Etcd3 {
  const callTimeoutMs = opts.callTimeoutMs ?? 2000;
  return new Etcd3({
    hosts: endpoints.map((e) => etcdHost(e)),
    dialTimeout: callTimeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: {
      host: () => passThrough,
      global: passThrough,
      watchBackoff: constantBackoff(opts.watchRetryMs ?? 250),
    },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.min_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.keepalive_time_ms': 5000,
      'grpc.keepalive_timeout_ms': 2000,
      'grpc.use_local_subchannel_pool': 1,
    },
  });
}
