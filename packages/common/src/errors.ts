// The one error vocabulary of kvfabric: a closed set of codes grouped by area. Pure: the table that maps them to
// gRPC status codes lives with the RPC adapter (rpc.ts).
import { clip, echo } from './echo.js';

export const ERROR_CODES = [
  // config and input
  'CONFIG_INVALID',
  'INVALID_ARGUMENT',
  // namespaces and geometry
  'NAMESPACE_INVALID',
  'GEOMETRY_CONFLICT',
  // engine instances and sessions
  'INSTANCE_UNKNOWN',
  'INSTANCE_EXISTS',
  'INSTANCE_FOREIGN',
  'SESSION_UNKNOWN',
  'SESSION_CONFLICT',
  'REGION_INVALID',
  // pool
  'POOL_EXHAUSTED',
  'POOL_INVALID_HANDLE',
  // leases and grants
  'LEASE_UNKNOWN',
  'LEASE_EXPIRED',
  'LEASE_FOREIGN',
  'LEASE_CONSUMED',
  'GRANT_UNKNOWN',
  'GRANT_REFUSED',
  'PEER_LIMIT_REACHED',
  // transport
  'TRANSPORT_UNAVAILABLE',
  'TRANSPORT_FAILED',
  'TRANSPORT_TIMEOUT',
  // metaserver
  'METASERVER_UNAVAILABLE',
  'NOT_LEADER',
  // limits: a quota or memory budget would be passed (the message names the limit)
  'QUOTA_EXCEEDED',
  // ssd
  'SSD_FAILED',
  // authentication and authorization
  'UNAUTHENTICATED',
  'PERMISSION_DENIED',
  // anything else
  'INTERNAL',
] as const;

export type KvErrorCode = (typeof ERROR_CODES)[number];

export class KvError extends Error {
  override readonly name = 'KvError';
  readonly code: KvErrorCode;

  /** message is cut to ERROR_MESSAGE_MAX_CHARS (echo.ts): no error carries a whole hostile input anywhere. */
  constructor(code: KvErrorCode, message: string, options?: { cause?: unknown }) {
    super(clip(message), options);
    this.code = code;
  }
}

export function isKvErrorCode(value: unknown): value is KvErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/**
 * The error of a pipelined stream's item answered with an error (its KvError code, INTERNAL when the code is not one,
 * and message); `prefix` (e.g. the call) goes before the message.
 */
export function itemError(err: { code: string; message: string }, prefix = ''): KvError {
  return new KvError(isKvErrorCode(err.code) ? err.code : 'INTERNAL', prefix + err.message);
}

/** Funnels any thrown value into a KvError; unknown throws become INTERNAL with the original as cause. */
export function toKvError(err: unknown): KvError {
  if (err instanceof KvError) return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (isKvErrorCode(code)) return new KvError(code, err.message, { cause: err });
    return new KvError('INTERNAL', err.message, { cause: err });
  }
  return new KvError('INTERNAL', String(err));
}

/**
 * Shorthand for input validation failures: `invalid('pool-size', 'expected a size like 16gb', raw)`. The bad value
 * is echoed cut short (`echo`).
 */
export function invalid(field: string, expected: string, got?: unknown): KvError {
  const suffix = got === undefined ? '' : `, got ${echo(got)}`;
  return new KvError('INVALID_ARGUMENT', `${field}: ${expected}${suffix}`);
}
