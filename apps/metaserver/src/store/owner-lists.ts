// The owner lists of every block table, as linked records in one arena: one record per (block, owner) = node slot
// (u16) + last touch in seconds (u32) + next record (u32), 10 bytes in chunked typed arrays. Lists are short
// (1..a few owners), kept in arrival order so "third or later owner" is a position. Record ids are 1-based (0 ends
// a list); released records are reused.
import { ChunkedU16, ChunkedU32 } from './chunked.js';

export class OwnerLists {
  readonly node = new ChunkedU16();
  readonly touched = new ChunkedU32();
  readonly next = new ChunkedU32();
  /** Records in use. */
  used = 0;
  private issued = 1; // record 0 is never used: 0 means "none"
  private freeHead = 0;

  alloc(nodeSlot: number, nowSec: number): number {
    let r = this.freeHead;
    if (r !== 0) {
      this.freeHead = this.next.get(r);
    } else {
      r = this.issued++;
      this.node.ensure(r + 1);
      this.touched.ensure(r + 1);
      this.next.ensure(r + 1);
    }
    this.node.set(r, nodeSlot);
    this.touched.set(r, nowSec);
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
    return this.node.bytes() + this.touched.bytes() + this.next.bytes();
  }
}
