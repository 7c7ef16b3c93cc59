// Regions engines handed over (as file descriptors, on the region handover socket) and not yet claimed by a
// RegisterInstance: the policy that decides which descriptors the node accepts, and the one-time tokens that name
// them. Pure: the descriptor numbers are opaque here; closing one is the injected `closeFd`.
import { randomBytes } from 'node:crypto';
import { KvError } from '@kvfabric/common';
import type { HandedFile, HandoverPeer } from '@kvfabric/native';

/** fcntl seals (linux/fcntl.h); the same values as @kvfabric/native's, kept here so this core loads no addon. */
const SEAL_SHRINK = 0x2;
const SEAL_GROW = 0x4;
const S_IFMT = 0o170000;

/** Who handed a descriptor over (SO_PEERCRED), and what it is: as the native handover thread describes them. */
export type Peer = HandoverPeer;
export type { HandedFile };

/** A descriptor the node accepted, until a registration claims it. */
export interface HandedRegion {
  fd: number;
  /** A command ring's eventfd, handed over with its memory. */
  eventFd?: number;
  peer: Peer;
  /** Names the region in messages and logs: `memfd:kv (sealed)`, `/dev/shm/x`. */
  label: string;
}

const shown = (link: string) => JSON.stringify(link.length > 96 ? `${link.slice(0, 96)}…` : link);

/**
 * Why the node refuses to map `file` for `peer`, or undefined when it accepts it. Accepted: a memfd sealed
 * against shrinking and growing (nothing can truncate it under a copy); or a regular file (not a memfd) open
 * read/write and owned by the engine's user (or any file when the engine runs as root): the node maps only
 * memory the engine could map itself, and a truncation of such a file fails the copy, not the node.
 */
export function refusal(file: HandedFile, peer: Peer): string | undefined {
  if (!file.regular)
    return `region: expected a memfd or a regular file, got ${shown(file.link)} (file type 0o${(file.mode & S_IFMT).toString(8)})`;
  if (!file.readWrite) return `region: ${shown(file.link)} is not open read/write (the node maps it shared read/write)`;
  const sealed = file.seals >= 0 && (file.seals & (SEAL_SHRINK | SEAL_GROW)) === (SEAL_SHRINK | SEAL_GROW);
  if (sealed) return undefined;
  if (file.link.startsWith('/memfd:'))
    return `region: memfd ${shown(file.link)} is not sealed: add F_SEAL_SHRINK and F_SEAL_GROW (fcntl F_ADD_SEALS) before handing it over`;
  if (peer.uid !== 0 && file.ownerUid !== peer.uid)
    return `region: ${shown(file.link)} is owned by uid ${file.ownerUid}, not by the engine's uid ${peer.uid}`;
  return undefined;
}

export interface HandedRegionsOptions {
  closeFd: (fd: number) => void;
  ttlMs: number;
  /** Unclaimed regions held at most; more handovers are refused until some are claimed or expire. */
  max: number;
  now?: () => number;
}

export class HandedRegions {
  readonly counters = { admitted: 0, refused: 0, expired: 0 };
  private readonly byToken = new Map<string, HandedRegion & { expiresAtMs: number }>();
  private readonly now: () => number;

  constructor(private readonly opts: HandedRegionsOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.byToken.size;
  }

  /** Applies the policy: the token naming the accepted region, or a refusal (the caller closes the descriptor). */
  admit(
    fd: number,
    file: HandedFile,
    peer: Peer,
    eventFd?: number,
  ): { token: string } | { code: 'REGION_INVALID'; message: string } {
    const why = refusal(file, peer);
    if (why) {
      this.counters.refused++;
      return { code: 'REGION_INVALID', message: why };
    }
    this.sweep();
    if (this.byToken.size >= this.opts.max) {
      this.counters.refused++;
      return {
        code: 'REGION_INVALID',
        message: `region: ${this.opts.max} handed-over regions are waiting for RegisterInstance; register or retry later`,
      };
    }
    this.counters.admitted++;
    const token = randomBytes(16).toString('hex');
    const sealed = file.seals >= 0 && (file.seals & (SEAL_SHRINK | SEAL_GROW)) !== 0;
    const label = `${file.link.slice(0, 96)}${sealed ? ' (sealed)' : ''}`;
    this.byToken.set(token, {
      fd,
      peer,
      label,
      expiresAtMs: this.now() + this.opts.ttlMs,
      ...(eventFd !== undefined ? { eventFd } : {}),
    });
    return { token };
  }

  /** Removes and returns the region `token` names: the caller owns its descriptor now. REGION_INVALID if none. */
  take(token: string): HandedRegion {
    const entry = this.byToken.get(token);
    if (!entry || entry.expiresAtMs <= this.now()) {
      this.sweep();
      throw new KvError(
        'REGION_INVALID',
        `region.token: ${JSON.stringify(token.slice(0, 40))} names no handed-over region (unknown, already used, or expired after ${this.opts.ttlMs / 1000} s)`,
      );
    }
    this.byToken.delete(token);
    const { fd, peer, label, eventFd } = entry;
    return { fd, peer, label, ...(eventFd !== undefined ? { eventFd } : {}) };
  }

  /** Closes the descriptor of a region `take` returned, once it is mapped (or could not be). */
  release(region: HandedRegion): void {
    this.opts.closeFd(region.fd);
    if (region.eventFd !== undefined) this.opts.closeFd(region.eventFd);
  }

  /** Closes the descriptors of regions nobody claimed in time. */
  sweep(): number {
    const now = this.now();
    let n = 0;
    for (const [token, entry] of this.byToken) {
      if (entry.expiresAtMs > now) continue;
      this.byToken.delete(token);
      this.release(entry);
      this.counters.expired++;
      n++;
    }
    return n;
  }

  close(): void {
    for (const entry of this.byToken.values()) this.release(entry);
    this.byToken.clear();
  }
}
