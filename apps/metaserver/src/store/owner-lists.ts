// The owner lists of every block table, as linked records in one arena: one record per (block, owner) = node slot
// (u16) + next record (u32), 6 bytes in chunked typed arrays. Lists are short (1..a few owners), kept in arrival
// order so "third or later owner" is a position. Record ids are 1-based (0 ends a list); released records are reused.
// A record has no time of its own: an ownership lives as long as its node's session (sessions.ts), so nothing per
// record needs refreshing or expiring.
import { ChunkedU16, ChunkedU32 } from './chunked.js';

/** Bytes one owner record takes in the arena. */
export const OWNER_RECORD_BYTES = 6;

export class OwnerLists {
  readonly node = new ChunkedU16();
  readonly next = new ChunkedU32();
  /** Records in use. */
  used = 0;
  private issued = 1; // record 0 is never used: 0 means "none"
  private freeHead = 0;

  alloc(nodeSlot: number): number {
    let r = this.freeHead;
    if (r !== 0) {
      this.freeHead = this.next.get(r);
    } else {
      r = this.issued++;
      this.node.ensure(r + 1);
      this.next.ensure(r + 1);
    }
    this.node.set(r, nodeSlot);
    this.next.set(r, 0);
    this.used++;
    return r;
  }

  release(r: number): void {
    this.next.set(r, this.freeHead);
    this.freeHead = r;
    this.used--;
  }

  bytes(): number {
    return this.node.bytes() + this.next.bytes();
  }
}
