// How KvErrors cross gRPC: the one table from error codes to status codes, the metadata key that carries the
// code (so clients get typed errors back), and the client side's way back to a KvError.
import * as grpc from '@grpc/grpc-js';
import { KvError, toKvError, isKvErrorCode, type KvErrorCode } from './errors.js';

/** The one table from error codes to gRPC status, used at every service boundary. */
export const GRPC_STATUS_OF: Readonly<Record<KvErrorCode, grpc.status>> = {
  // config and input
  CONFIG_INVALID: grpc.status.INVALID_ARGUMENT,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  // namespaces and geometry
  NAMESPACE_INVALID: grpc.status.INVALID_ARGUMENT,
  GEOMETRY_CONFLICT: grpc.status.FAILED_PRECONDITION,
  // engine instances and sessions
  INSTANCE_UNKNOWN: grpc.status.NOT_FOUND,
  INSTANCE_EXISTS: grpc.status.FAILED_PRECONDITION,
  INSTANCE_FOREIGN: grpc.status.PERMISSION_DENIED,
  SESSION_UNKNOWN: grpc.status.NOT_FOUND,
  SESSION_CONFLICT: grpc.status.FAILED_PRECONDITION,
  REGION_INVALID: grpc.status.INVALID_ARGUMENT,
  // pool
  POOL_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  POOL_INVALID_HANDLE: grpc.status.INTERNAL,
  // leases and grants
  LEASE_UNKNOWN: grpc.status.NOT_FOUND,
  LEASE_EXPIRED: grpc.status.FAILED_PRECONDITION,
  LEASE_FOREIGN: grpc.status.FAILED_PRECONDITION,
  LEASE_CONSUMED: grpc.status.FAILED_PRECONDITION,
  GRANT_UNKNOWN: grpc.status.NOT_FOUND,
  GRANT_REFUSED: grpc.status.PERMISSION_DENIED,
  PEER_LIMIT_REACHED: grpc.status.RESOURCE_EXHAUSTED,
  // transport
  TRANSPORT_UNAVAILABLE: grpc.status.UNAVAILABLE,
  TRANSPORT_FAILED: grpc.status.UNAVAILABLE,
  TRANSPORT_TIMEOUT: grpc.status.DEADLINE_EXCEEDED,
  // metaserver
  METASERVER_UNAVAILABLE: grpc.status.UNAVAILABLE,
  NOT_LEADER: grpc.status.UNAVAILABLE,
  // limits
  QUOTA_EXCEEDED: grpc.status.RESOURCE_EXHAUSTED,
  // ssd
  SSD_FAILED: grpc.status.INTERNAL,

  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  // anything else
  INTERNAL: grpc.status.INTERNAL,
};

/** The gRPC status a KvError is answered with. */
export function grpcStatusOf(err: KvError): grpc.status {
  return GRPC_STATUS_OF[err.code];
}

/** Metadata key carrying the KvError code across the wire, so clients get typed errors back. */
export const ERROR_CODE_KEY = 'kvfabric-error-code';

/** Trailer of a follower metaserver's NOT_LEADER answers: the leader's address (metaserver.proto). */
export const LEADER_ADDR_KEY = 'kvfabric-leader-addr';

export function errorToStatus(err: KvError, extra?: grpc.Metadata): Partial<grpc.StatusObject> {
  const metadata = extra ?? new grpc.Metadata();
  metadata.set(ERROR_CODE_KEY, err.code);
  return { code: grpcStatusOf(err), details: err.message, metadata };
}

/** Client side: turns a grpc-js error back into a KvError with the server's code when it sent one. */
export function fromGrpcError(err: unknown): KvError {
  if (err instanceof KvError) return err;
  const e = err as grpc.ServiceError;
  if (e && typeof e.code === 'number') {
    const sent = e.metadata?.get(ERROR_CODE_KEY)?.[0];
    const code: KvErrorCode = isKvErrorCode(sent) ? sent : grpcToKvCode(e.code);
    return new KvError(code, e.details || e.message, { cause: err });
  }
  return toKvError(err);
}

function grpcToKvCode(code: grpc.status): KvErrorCode {
  switch (code) {
    case grpc.status.INVALID_ARGUMENT:
      return 'INVALID_ARGUMENT';
    case grpc.status.UNAVAILABLE:
      return 'METASERVER_UNAVAILABLE';
    case grpc.status.DEADLINE_EXCEEDED:
      return 'TRANSPORT_TIMEOUT';
    case grpc.status.RESOURCE_EXHAUSTED: // from gRPC itself: a message past a size limit (kvfabric's carry a code)
      return 'QUOTA_EXCEEDED';
    case grpc.status.UNAUTHENTICATED:
      return 'UNAUTHENTICATED';
    case grpc.status.PERMISSION_DENIED:
      return 'PERMISSION_DENIED';
    default:
      return 'INTERNAL';
  }
}
