// The engine side of a command ring (the protocol is documented in native/src/command_ring.h): the ring's shared
// memory, made and mapped by the small kvfabric_fdpass addon, and an eventfd the node writes when it posts
// completions while the engine waits for them (engine_sleeping); the addon watches it on the event loop and calls
// `onCompletions` on the JS thread. The engine SDK writes commands and reads results in `buffer` with the offsets
// below.
import { checkInteger, invalidArgument, toNativeError } from './errors.js';
import { fdPassBinding } from './loader.js';

/** The ring's layout: byte offsets into the ring (header) and into a command slot. */
export const RING = Object.freeze({
  magic: 0x3152564b,
  version: 1,
  maxEntries: 4096,
  maxSlotBytes: 16 << 20,
  headerBytes: 512,
  commandHeaderBytes: 64,
  leaseIdBytes: 16,
  sqHead: 64,
  nodeSleeping: 68,
  sqTail: 128,
  cqHead: 192,
  engineSleeping: 196,
  cqTail: 256,
  cmd: Object.freeze({
    op: 0,
    hashLen: 1,
    flags: 2,
    status: 3,
    count: 4,
    userData: 8,
    leaseId: 16,
    r0: 32,
    r1: 36,
    r2: 40,
    r3: 44,
    r4: 48,
    messageBytes: 56,
  }),
  op: Object.freeze({ save: 1, load: 2, query: 3, release: 4 }),
  flag: Object.freeze({ localOnly: 1 }),
  status: Object.freeze({ ok: 0, error: 1, retry: 2 }),
});

/** Where the SQ, the CQ and the command slots of a ring of `entries` lie. */
export function ringLayout(entries: number, slotBytes: number) {
  const sq = RING.headerBytes;
  const cq = sq + 4 * entries;
  const slots = Math.ceil((cq + 4 * entries) / 64) * 64;
  const stride = RING.commandHeaderBytes + slotBytes;
  return { sq, cq, slots, stride, sizeBytes: slots + entries * stride };
}

export interface CommandRingOptions {
  /** memfd name, [A-Za-z0-9._-]{1,200} */
  name: string;
  /** Commands in flight at most: a power of two, 1..4096. */
  entries: number;
  /** Payload bytes per command: a multiple of 64, 64..16 MiB. */
  slotBytes: number;
}

export interface CommandRing {
  /** The sealed memfd to hand over to the node (the ring closes it in close()). */
  readonly fd: number;
  /** The eventfd the node writes when completions wait (handed over with fd). */
  readonly eventFd: number;
  readonly buffer: ArrayBuffer;
  readonly sizeBytes: number;
  /** Wakes the node's ring thread (call after advancing sq_tail when node_sleeping is set). */
  wake(): void;
  /** Keep the process alive while commands are in flight (ref), and only then (unref). */
  ref(): void;
  unref(): void;
  /** Stops watching the eventfd and closes both descriptors. Idempotent. */
  close(): void;
}

const NAME = /^[A-Za-z0-9._-]{1,200}$/;

export function createCommandRing(opts: CommandRingOptions, onCompletions: () => void): CommandRing {
  if (typeof opts.name !== 'string' || !NAME.test(opts.name))
    throw invalidArgument('name', '[A-Za-z0-9._-]{1,200}', opts.name);
  checkInteger('entries', opts.entries, 1, RING.maxEntries);
  if ((opts.entries & (opts.entries - 1)) !== 0) throw invalidArgument('entries', 'a power of two', opts.entries);
  checkInteger('slotBytes', opts.slotBytes, 64, RING.maxSlotBytes);
  if (opts.slotBytes % 64 !== 0) throw invalidArgument('slotBytes', 'a multiple of 64', opts.slotBytes);
  if (typeof onCompletions !== 'function') throw invalidArgument('onCompletions', 'a function', onCompletions);
  const Ring = fdPassBinding().CommandRing as new (
    name: string,
    entries: number,
    slotBytes: number,
    cb: () => void,
  ) => CommandRing;
  try {
    return new Ring(opts.name, opts.entries, opts.slotBytes, onCompletions);
  } catch (err) {
    throw toNativeError(err);
  }
}
