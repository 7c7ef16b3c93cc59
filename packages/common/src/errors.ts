// The one error vocabulary of kvfabric: a closed set of codes grouped by area, and the one table
// that maps them to gRPC status codes at every service boundary.
import { status as GrpcStatus } from '@grpc/grpc-js';

export const ERROR_CODES = {
  // config and input
  CONFIG_INVALID: GrpcStatus.INVALID_ARGUMENT,
  INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  // namespaces and geometry
  NAMESPACE_INVALID: GrpcStatus.INVALID_ARGUMENT,
  GEOMETRY_CONFLICT: GrpcStatus.FAILED_PRECONDITION,
  // engine instances and sessions
  INSTANCE_UNKNOWN: GrpcStatus.NOT_FOUND,
  INSTANCE_EXISTS: GrpcStatus.FAILED_PRECONDITION,
  SESSION_UNKNOWN: GrpcStatus.NOT_FOUND,
  SESSION_CONFLICT: GrpcStatus.FAILED_PRECONDITION,
  REGION_INVALID: GrpcStatus.INVALID_ARGUMENT,
  // pool
  POOL_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  POOL_INVALID_HANDLE: GrpcStatus.INTERNAL,
  // leases and grants
  LEASE_UNKNOWN: GrpcStatus.NOT_FOUND,
  LEASE_EXPIRED: GrpcStatus.FAILED_PRECONDITION,
  LEASE_FOREIGN: GrpcStatus.FAILED_PRECONDITION,
  LEASE_CONSUMED: GrpcStatus.FAILED_PRECONDITION,
  GRANT_UNKNOWN: GrpcStatus.NOT_FOUND,
  GRANT_REFUSED: GrpcStatus.PERMISSION_DENIED,
  // transport
  TRANSPORT_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  TRANSPORT_FAILED: GrpcStatus.UNAVAILABLE,
  TRANSPORT_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  // metaserver
  METASERVER_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  NOT_LEADER: GrpcStatus.UNAVAILABLE,
  // ssd
  SSD_FAILED: GrpcStatus.INTERNAL,
  // anything else
  INTERNAL: GrpcStatus.INTERNAL,
} as const satisfies Record<string, GrpcStatus>;

export type KvErrorCode = keyof typeof ERROR_CODES;

export class KvError extends Error {
  override readonly name = 'KvError';
  readonly code: KvErrorCode;

  constructor(code: KvErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  get grpcStatus(): GrpcStatus {
    return ERROR_CODES[this.code];
  }
}

export function isKvErrorCode(value: unknown): value is KvErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
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

/** Shorthand for input validation failures: `invalid('pool-size', 'expected a size like 16gb', raw)`. */
export function invalid(field: string, expected: string, got?: unknown): KvError {
  const suffix = got === undefined ? '' : `, got ${JSON.stringify(got)}`;
  return new KvError('INVALID_ARGUMENT', `${field}: ${expected}${suffix}`);
}
