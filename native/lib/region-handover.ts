// The node's side of the region handover (protocol: region-handover-protocol.ts): a unix SOCK_SEQPACKET socket on
// which engines pass their KV region's descriptor. A native thread receives each request with the sender's
// credentials (SO_PEERCRED) and a description of the descriptor; this wrapper checks the framing, asks `decide`,
// replies, and closes the descriptor of every refused request. An admitted descriptor belongs to `decide`'s owner.
import { closeSync } from 'node:fs';
import { callNative, invalidArgument, type NativeErrorCode } from './errors.js';
import { binding } from './loader.js';
import {
  HANDOVER_REQUEST,
  RING_HANDOVER_REQUEST,
  formatReply,
  type HandoverReply,
} from './region-handover-protocol.js';

export {
  HANDOVER_REQUEST,
  RING_HANDOVER_REQUEST,
  HANDOVER_TOKEN,
  HANDOVER_TOKEN_TTL_MS,
  handoverSocketPath,
} from './region-handover-protocol.js';

/** fcntl seals (linux/fcntl.h). */
export const SEAL_SHRINK = 0x2;
export const SEAL_GROW = 0x4;

/** Who sent a request: the connecting process's credentials (SO_PEERCRED). */
export interface HandoverPeer {
  pid: number;
  uid: number;
  gid: number;
}

/** What the passed descriptor is, as the node's thread saw it. */
export interface HandedFile {
  regular: boolean;
  /** st_mode */
  mode: number;
  ownerUid: number;
  sizeBytes: number;
  /** F_GET_SEALS, or -1 for a file that cannot carry seals. */
  seals: number;
  /** Open O_RDWR (the node maps it shared read/write). */
  readWrite: boolean;
  /** The /proc/self/fd link: "/dev/shm/x", "/memfd:name (deleted)". */
  link: string;
}

export interface HandoverRequest {
  /** The passed descriptor, now open in this process. */
  fd: number;
  /** A command ring's eventfd (a RING_HANDOVER_REQUEST), now open in this process; the admitter owns it too. */
  eventFd?: number;
  peer: HandoverPeer;
  file: HandedFile;
}

/** Admit (the caller now owns `fd`) with the token to reply, or refuse (the descriptor is closed here). */
export type HandoverDecision = { token: string } | { code: NativeErrorCode; message: string };

interface NativeRequest {
  id: number;
  payload: Buffer;
  fds: number[];
  links: string[];
  truncated: boolean;
  peer?: HandoverPeer;
  file?: HandedFile;
}

interface NativeHandover {
  reply(id: number, text: Buffer): boolean;
  close(): void;
}

export class RegionHandoverServer implements Disposable {
  readonly #native: NativeHandover;
  #closed = false;

  private constructor(
    readonly path: string,
    decide: (req: HandoverRequest) => HandoverDecision,
  ) {
    const Native = binding().RegionHandover as new (
      path: string,
      onRequest: (r: NativeRequest) => void,
    ) => NativeHandover;
    this.#native = callNative(() => new Native(path, (r) => this.#answer(r, decide)));
  }

  /** Listens on `path` (which must not exist). */
  static listen(path: string, decide: (req: HandoverRequest) => HandoverDecision): RegionHandoverServer {
    if (typeof path !== 'string' || !path.startsWith('/') || Buffer.byteLength(path) > 107)
      throw invalidArgument('path', 'an absolute unix socket path of at most 107 bytes', path);
    if (typeof decide !== 'function') throw invalidArgument('decide', 'a function', decide);
    return new RegionHandoverServer(path, decide);
  }

  #answer(r: NativeRequest, decide: (req: HandoverRequest) => HandoverDecision): void {
    let decision: HandoverDecision;
    try {
      decision =
        frameProblem(r) ??
        decide({ fd: r.fds[0]!, peer: r.peer!, file: r.file!, ...(r.fds.length === 2 ? { eventFd: r.fds[1]! } : {}) });
    } catch (err) {
      decision = { code: 'INTERNAL', message: `region handover: ${(err as Error).message}` };
    }
    const reply: HandoverReply =
      'token' in decision
        ? { ok: true, token: decision.token }
        : { ok: false, code: decision.code, message: decision.message };
    const admitted = reply.ok;
    if (!admitted) for (const fd of r.fds) closeQuietly(fd);
    const sent = this.#native.reply(r.id, formatReply(reply));
    if (!sent && admitted) for (const fd of r.fds) closeQuietly(fd); // closed meanwhile: nobody holds the token
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A request that does not follow the protocol, as a refusal naming what is wrong; undefined when well formed. */
function frameProblem(r: NativeRequest): HandoverDecision | undefined {
  const payload = r.payload.toString('latin1');
  const ring = payload === RING_HANDOVER_REQUEST;
  if (payload !== HANDOVER_REQUEST && !ring)
    return {
      code: 'INVALID_ARGUMENT',
      message: `payload: expected ${JSON.stringify(HANDOVER_REQUEST)} or ${JSON.stringify(RING_HANDOVER_REQUEST)}, got ${JSON.stringify(payload.slice(0, 64))}`,
    };
  if (r.truncated) return { code: 'INVALID_ARGUMENT', message: 'request: longer than one payload and its descriptors' };
  const want = ring ? 2 : 1;
  if (r.fds.length !== want)
    return {
      code: 'INVALID_ARGUMENT',
      message: `descriptors: expected exactly ${ring ? 'two (the ring memfd, an eventfd)' : 'one'} (SCM_RIGHTS), got ${r.fds.length}`,
    };
  if (ring && r.links[1] !== 'anon_inode:[eventfd]')
    return {
      code: 'INVALID_ARGUMENT',
      message: `descriptors[1]: expected an eventfd, got ${JSON.stringify((r.links[1] ?? '').slice(0, 64))}`,
    };
  if (!r.peer || !r.file) return { code: 'INTERNAL', message: 'region handover: no peer credentials' };
  return undefined;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
