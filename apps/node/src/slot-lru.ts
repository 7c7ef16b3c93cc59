// The block index's hot per-slot fields and its LRU lists. What a prefix hit reads and writes sits side by side so
// a hit touches one cache line of its own: per slot [LRU prev, LRU next, LRU list (-1: in no list), sealed (0/1)].
// The lists (one per block class: local copies, pulled copies) are intrusive doubly linked lists threaded through
// those fields, most recent at the head. Pure: typed arrays only.

const NIL = -1;
const HOT = 4; // fields per slot
const PREV = 0;
const NEXT = 1;
const LIST = 2;
const SEALED = 3;

function newHot(slots: number): Int32Array {
  const hot = new Int32Array(slots * HOT);
  for (let i = 0; i < hot.length; i += HOT) {
    hot[i + PREV] = NIL;
    hot[i + NEXT] = NIL;
    hot[i + LIST] = NIL;
  }
  return hot;
}

export class SlotLru {
  private hot: Int32Array;
  private readonly heads: Int32Array;
  private readonly tails: Int32Array;

  constructor(capacity: number, lists: number) {
    this.hot = newHot(capacity);
    this.heads = new Int32Array(lists).fill(NIL);
    this.tails = new Int32Array(lists).fill(NIL);
  }

  isSealed(slot: number): boolean {
    return this.hot[slot * HOT + SEALED] === 1;
  }

  setSealed(slot: number, sealed: boolean): void {
    this.hot[slot * HOT + SEALED] = sealed ? 1 : 0;
  }

  /** The least recently used slot of `list`, or -1 when it is empty. */
  tail(list: number): number {
    return this.tails[list]!;
  }

  /** Puts a slot at the front of `list` (it must be in no list). */
  pushFront(slot: number, list: number): void {
    const hot = this.hot;
    const head = this.heads[list]!;
    const b = slot * HOT;
    hot[b + PREV] = NIL;
    hot[b + NEXT] = head;
    hot[b + LIST] = list;
    if (head !== NIL) hot[head * HOT + PREV] = slot;
    else this.tails[list] = slot;
    this.heads[list] = slot;
  }

  /** Takes a slot out of its list (nothing when it is in none). */
  remove(slot: number): void {
    const hot = this.hot;
    const b = slot * HOT;
    const list = hot[b + LIST]!;
    if (list === NIL) return;
    const p = hot[b + PREV]!;
    const n = hot[b + NEXT]!;
    if (p !== NIL) hot[p * HOT + NEXT] = n;
    else this.heads[list] = n;
    if (n !== NIL) hot[n * HOT + PREV] = p;
    else this.tails[list] = p;
    hot[b + PREV] = NIL;
    hot[b + NEXT] = NIL;
    hot[b + LIST] = NIL;
  }

  /** Moves a listed slot to the front of its list (a hit); slots in no list (pinned) stay out. */
  touch(slot: number): void {
    const list = this.hot[slot * HOT + LIST]!;
    if (list === NIL || this.heads[list] === slot) return;
    this.remove(slot);
    this.pushFront(slot, list);
  }

  /** Grows to `capacity` slots. */
  grow(capacity: number): void {
    const hot = newHot(capacity);
    hot.set(this.hot);
    this.hot = hot;
  }
}
