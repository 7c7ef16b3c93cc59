// The one etcd3 client setup, for the leader election (apps/metaserver/src/ha) and the leader locator
// (packages/client): plaintext, or TLS with etcd's CA and, when etcd checks them, a client certificate; every unary
// call has a deadline, no hidden retries or circuit breakers (callers retry on their own schedule, and a breaker
// that stays open for 5 s would delay recovery after etcd comes back), fast gRPC reconnects and a constant
// watch-reconnect backoff.
import { Etcd3, type IOptions } from 'etcd3';
import { etcdEndpointHost } from '../etcd-tls-flags.js';
import type { EtcdTls } from '../etcd-tls.js';

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
  /** TLS to etcd (readEtcdTls from the --etcd-ca/--etcd-cert/--etcd-key flags); absent: plaintext. */
  tls?: EtcdTls | undefined;
  /** The flag or field that named the endpoints, for errors. Default "etcd-endpoints". */
  field?: string;
}

/**
 * The one place etcd3's options are built, for every etcd client kvfabric makes. Endpoints are host:port,
 * http://host:port or https://host:port; the scheme must agree with `tls` (CONFIG_INVALID naming `field`).
 */
export function etcdOptions(endpoints: readonly string[], opts: EtcdConnectOptions = {}): IOptions {
  const callTimeoutMs = opts.callTimeoutMs ?? 2000;
  const field = opts.field ?? 'etcd-endpoints';
  return {
    hosts: endpoints.map((e) => etcdEndpointHost(e, opts.tls !== undefined, field)),
    ...(opts.tls ? { credentials: opts.tls } : {}),
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
  };
}

export function connectEtcd(endpoints: readonly string[], opts: EtcdConnectOptions = {}): Etcd3 {
  return new Etcd3(etcdOptions(endpoints, opts));
}
