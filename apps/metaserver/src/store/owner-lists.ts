// The owner lists of every block table, as linked records in one arena: one record per (block, owner) = node slot
// (u16) + a link word (u32), 6 bytes in chunked typed arrays. The link word holds the next record in its low 30 bits
// and the owner's tier (where the node holds the block: dram 0, ssd 1, both 2) in its top 2, so the tier costs no
// byte. Lists are short (1..a few owners), kept in arrival order so "third or later owner" is a position. Record
// ids are 1-based (0 ends a list) and below MAX_OWNER_RECORDS; released records are reused.
// A record has no time of its own: an ownership lives as long as its node's session (sessions.ts), so nothing per
// record needs refreshing or expiring.
import type { BlockTier } from '@kvfabric/common';
import { ChunkedU16, ChunkedU32 } from './chunked.js';

/** Bytes one owner record takes in the arena. */
export const OWNER_RECORD_BYTES = 6;

const NEXT_BITS = 30;
const NEXT_MASK = (1 << NEXT_BITS) - 1;

/** Records the link word can address (ids 1..2^30 - 1): at 6 bytes each, 6 GiB of records. */
export const MAX_OWNER_RECORDS = NEXT_MASK;

export class OwnerLists {
  readonly node = new ChunkedU16();
  /** Per record: next record (low 30 bits) | tier << 30. Read through nextOf / tierOf. */
  private readonly link = new ChunkedU32();
  /** Records in use. */
  used = 0;
  private issued = 1; // record 0 is never used: 0 means "none"
  private freeHead = 0;

  /** A new record of nodeSlot holding the block in `tier`, ending a list. Throws past MAX_OWNER_RECORDS. */
  alloc(nodeSlot: number, tier: BlockTier): number {
    let r = this.freeHead;
    if (r !== 0) {
      this.freeHead = this.nextOf(r);
    } else {
      if (this.issued > MAX_OWNER_RECORDS) throw new RangeError(`owner records: more than ${MAX_OWNER_RECORDS}`);
      r = this.issued++;
      this.node.ensure(r + 1);
      this.link.ensure(r + 1);
    }
    this.node.set(r, nodeSlot);
    this.link.set(r, tier << NEXT_BITS);
    this.used++;
    return r;
  }

  release(r: number): void {
    this.link.set(r, this.freeHead);
    this.freeHead = r;
    this.used--;
  }

  /** The record after r in its list (0: none). */
  nextOf(r: number): number {
    return this.link.get(r) & NEXT_MASK;
  }

  /** Links r to next, keeping r's tier. */
  setNext(r: number, next: number): void {
    this.link.set(r, ((this.link.get(r) & ~NEXT_MASK) | next) >>> 0);
  }

  tierOf(r: number): BlockTier {
    return (this.link.get(r) >>> NEXT_BITS) as BlockTier;
  }

  /** Sets r's tier; true when it changed. */
  setTier(r: number, tier: BlockTier): boolean {
    const w = this.link.get(r);
    if (w >>> NEXT_BITS === tier) return false;
    this.link.set(r, ((w & NEXT_MASK) | (tier << NEXT_BITS)) >>> 0);
    return true;
  }

  bytes(): number {
    return this.node.bytes() + this.link.bytes();
  }
}
