// The engine side of the region handover, for the engine SDK: a sealed memfd to hold the KV region, and the
// hand-over of a region's descriptor to the node (SCM_RIGHTS), which answers with a one-time token. Loads only
// the small kvfabric_fdpass addon.
import { NativeError, checkInteger, invalidArgument, isNativeErrorCode, toNativeError } from './errors.js';
import { fdPassBinding } from './loader.js';
import { HANDOVER_REQUEST, RING_HANDOVER_REQUEST, parseReply } from './region-handover-protocol.js';

export {
  HANDOVER_REQUEST,
  HANDOVER_TOKEN_TTL_MS,
  RING_HANDOVER_REQUEST,
  handoverSocketPath,
} from './region-handover-protocol.js';

interface NativeFdPass {
  createSealedMemfd(name: string, sizeBytes: number): number;
  sendFd(socketPath: string, fds: number[], payload: string, timeoutMs: number): Promise<Buffer>;
}

const MEMFD_NAME = /^[A-Za-z0-9._-]{1,200}$/;

/**
 * A memfd of `sizeBytes` sealed with F_SEAL_SHRINK | F_SEAL_GROW: the node can map it knowing it can never shrink
 * under a copy. The caller owns the descriptor (close it with fs.closeSync).
 */
export function createSealedMemfd(name: string, sizeBytes: number): number {
  if (typeof name !== 'string' || !MEMFD_NAME.test(name)) throw invalidArgument('name', '[A-Za-z0-9._-]{1,200}', name);
  checkInteger('sizeBytes', sizeBytes, 1);
  try {
    return (fdPassBinding() as NativeFdPass).createSealedMemfd(name, sizeBytes);
  } catch (err) {
    throw toNativeError(err);
  }
}

/**
 * Passes `fd` to the node listening on `socketPath` (its engine socket + ".regions") and resolves the token that
 * names the region in RegisterInstance. A refusal rejects with the node's code and message (REGION_INVALID: not
 * sealed, not owned by this process's user, not read/write).
 */
export function handOverRegion(socketPath: string, fd: number, timeoutMs = 10_000): Promise<string> {
  return handOver(socketPath, [fd], HANDOVER_REQUEST, timeoutMs);
}

/** Passes a command ring (its sealed memfd and its eventfd) to the node; resolves the token AttachRing names. */
export function handOverRing(socketPath: string, fd: number, eventFd: number, timeoutMs = 10_000): Promise<string> {
  checkInteger('eventFd', eventFd, 0);
  return handOver(socketPath, [fd, eventFd], RING_HANDOVER_REQUEST, timeoutMs);
}

async function handOver(socketPath: string, fds: number[], payload: string, timeoutMs: number): Promise<string> {
  if (typeof socketPath !== 'string' || !socketPath.startsWith('/') || socketPath.length > 107)
    throw invalidArgument('socketPath', 'an absolute unix socket path of at most 107 bytes', socketPath);
  checkInteger('fd', fds[0], 0);
  checkInteger('timeoutMs', timeoutMs, 1, 600_000);
  let raw: Buffer;
  try {
    raw = await (fdPassBinding() as NativeFdPass).sendFd(socketPath, fds, payload, timeoutMs);
  } catch (err) {
    throw toNativeError(err);
  }
  const reply = parseReply(raw);
  if (reply.ok) return reply.token;
  throw new NativeError(isNativeErrorCode(reply.code) ? reply.code : 'INTERNAL', reply.message);
}

export { RING, createCommandRing, ringLayout, type CommandRing, type CommandRingOptions } from './command-ring.js';
