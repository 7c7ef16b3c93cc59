// gRPC channel options that bound what a peer can make a process hold: message sizes (per service, from its field
// caps) and, on servers, how long an HTTP/2 connection may sit without a call before it is closed.
import type * as grpc from '@grpc/grpc-js';

/** Message size limits of one side of a service: what it accepts and what it may send. */
export function messageSizeOptions(maxReceiveBytes: number, maxSendBytes: number): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxReceiveBytes,
    'grpc.max_send_message_length': maxSendBytes,
  };
}

/**
 * Server side: a connection with no call in flight for idleMs is closed (GOAWAY), so idle or abandoned clients do not
 * hold sockets and HTTP/2 sessions forever; clients reconnect on their next call. Keepalive pings (ours every 10 s,
 * answered within 5 s) close connections whose peer went away without a FIN.
 */
export function idleServerOptions(idleMs: number): grpc.ChannelOptions {
  return { 'grpc.max_connection_idle_ms': idleMs };
}
