// The instance credential on the wire: RegisterInstance answers instance_key to the caller that registered, and
// every later call naming the instance carries it in this metadata entry (node.proto, RegisterInstanceResponse).
import type * as grpc from '@grpc/grpc-js';

export const INSTANCE_KEY_METADATA = 'kvfabric-instance-key';

/** The key a call (or stream) presents; empty when it has none. */
export function instanceKeyOf(call: { metadata: grpc.Metadata }): string {
  const v = call.metadata.get(INSTANCE_KEY_METADATA)[0];
  return typeof v === 'string' ? v.slice(0, 128) : '';
}
