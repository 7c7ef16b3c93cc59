// The background sweep, in budgeted steps so a large index never blocks the event loop for long: a pass first
// forgets sessions unseen for sessionDropMs (with their ownerships), then walks every table dropping ownerships not
// touched for ttlMs. Tables dropped or replaced while a pass is under way are skipped.
import type { NamespacedTable, OwnerIndex } from './owner-index.js';
import type { NodeSession, NodeSessions } from './sessions.js';
import type { SweepResult } from './types.js';

export interface SweepOptions {
  index: OwnerIndex;
  sessions: NodeSessions;
  ttlMs: number;
  sessionDropMs: number;
  /** Drops a session with its ownerships; returns how many ownerships. */
  dropSession: (s: NodeSession) => number;
}

interface Cursor {
  tables: NamespacedTable[];
  table: number;
  entry: number;
}

export class Sweep {
  private cursor: Cursor | undefined;

  constructor(private readonly opts: SweepOptions) {}

  /** Advances the pass by about `budget` entries at nowMs (nowSec: the owner records' clock). Call until `done`. */
  step(budget: number, nowMs: number, nowSec: number): SweepResult {
    const { index, sessions } = this.opts;
    const result: SweepResult = { done: false, expired: 0, droppedSessions: 0, droppedOwners: 0 };
    if (!this.cursor) {
      for (const s of sessions.all()) {
        if (nowMs - s.lastHeartbeatMs < this.opts.sessionDropMs) continue;
        result.droppedOwners += this.opts.dropSession(s);
        result.droppedSessions++;
      }
      this.cursor = { tables: index.tables(), table: 0, entry: 0 };
    }
    const cur = this.cursor;
    const ttlSec = Math.ceil(this.opts.ttlMs / 1000);
    let left = budget;
    while (cur.table < cur.tables.length && left > 0) {
      const at = cur.tables[cur.table]!;
      if (!index.holds(at)) {
        cur.table++;
        cur.entry = 0;
        continue;
      }
      const end = Math.min(at.table.idBound, cur.entry + left);
      result.expired += index.expire(at.table, cur.entry, end, nowSec, ttlSec);
      left -= end - cur.entry;
      cur.entry = end;
      if (cur.entry >= at.table.idBound) {
        index.dropIfEmpty(at.ns, at.table);
        cur.table++;
        cur.entry = 0;
      }
    }
    if (cur.table >= cur.tables.length) {
      this.cursor = undefined;
      result.done = true;
    }
    return result;
  }
}
