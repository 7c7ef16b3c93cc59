// Node sessions: one per node process (node_id is random per process), interned to a small slot number that the
// owner records store. A node is live while its last heartbeat is younger than the stale window; an address belongs
// to one session at a time, and another session may take it over only once its holder went stale.
import { KvError, METASERVER_MAX_NODES } from '@kvfabric/common';
import type { HeartbeatInput, NodeStatsInput } from './types.js';

/** Owner records store a node's slot in 16 bits. */
export const MAX_NODE_SLOTS = METASERVER_MAX_NODES;

export interface NodeSession {
  readonly slot: number;
  readonly nodeId: string;
  addr: string;
  transports: number[];
  stats: NodeStatsInput;
  readonly registeredAtMs: number;
  lastHeartbeatMs: number;
}

export class NodeSessions {
  private readonly byId = new Map<string, NodeSession>();
  private readonly byAddr = new Map<string, NodeSession>();
  private readonly bySlot: (NodeSession | undefined)[] = [];
  private readonly freeSlots: number[] = [];

  constructor(readonly staleMs: number) {}

  get size(): number {
    return this.byId.size;
  }

  /** Slots are below this bound. */
  get slotBound(): number {
    return this.bySlot.length;
  }

  get(nodeId: string): NodeSession | undefined {
    return this.byId.get(nodeId);
  }

  atSlot(slot: number): NodeSession | undefined {
    return this.bySlot[slot];
  }

  isLive(s: NodeSession, nowMs: number): boolean {
    return nowMs - s.lastHeartbeatMs < this.staleMs;
  }

  /** The session at slot when it is live at nowMs (no allocation, for per-query checks of a few owners). */
  liveAt(slot: number, nowMs: number): NodeSession | undefined {
    const s = this.bySlot[slot];
    return s && nowMs - s.lastHeartbeatMs < this.staleMs ? s : undefined;
  }

  /** Live flags by slot, for queries that test many owner records against one clock reading. */
  liveSlots(nowMs: number): Uint8Array {
    const live = new Uint8Array(this.bySlot.length);
    for (let i = 0; i < this.bySlot.length; i++) {
      const s = this.bySlot[i];
      if (s && nowMs - s.lastHeartbeatMs < this.staleMs) live[i] = 1;
    }
    return live;
  }

  /**
   * The session of another node holding addr when it is stale (the caller drops it with its ownerships before
   * `beat` takes the address over); throws SESSION_CONFLICT while that holder is live.
   */
  staleHolderOf(nodeId: string, addr: string, nowMs: number): NodeSession | undefined {
    const holder = this.byAddr.get(addr);
    if (!holder || holder.nodeId === nodeId) return undefined;
    if (this.isLive(holder, nowMs)) {
      throw new KvError(
        'SESSION_CONFLICT',
        `addr: ${addr} belongs to live node ${holder.nodeId}; another session may take it over after ` +
          `${this.staleMs / 1000}s without heartbeats from it`,
      );
    }
    return holder;
  }

  /** Records a heartbeat: creates the session (returns true) or refreshes it, moving it to the new address. */
  beat(input: HeartbeatInput, nowMs: number): boolean {
    let s = this.byId.get(input.nodeId);
    const registered = !s;
    if (!s) s = this.add(input.nodeId, input.addr, nowMs);
    else if (s.addr !== input.addr) this.moveAddr(s, input.addr);
    s.lastHeartbeatMs = nowMs;
    s.transports = [...input.transports]; // a new array: prefix answers share the previous one
    if (input.stats) s.stats = { ...input.stats };
    return registered;
  }

  /** Forgets a session; its slot is reused, so its owner records must be gone already. */
  remove(s: NodeSession): void {
    this.byId.delete(s.nodeId);
    if (this.byAddr.get(s.addr) === s) this.byAddr.delete(s.addr);
    this.bySlot[s.slot] = undefined;
    this.freeSlots.push(s.slot);
  }

  all(): NodeSession[] {
    return [...this.byId.values()];
  }

  counts(nowMs: number): { live: number; stale: number } {
    let live = 0;
    for (const s of this.byId.values()) if (this.isLive(s, nowMs)) live++;
    return { live, stale: this.byId.size - live };
  }

  private add(nodeId: string, addr: string, nowMs: number): NodeSession {
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.bySlot.length;
    if (slot >= MAX_NODE_SLOTS)
      throw new KvError('QUOTA_EXCEEDED', `node_id: too many node sessions (at most ${MAX_NODE_SLOTS})`);
    const s: NodeSession = {
      slot,
      nodeId,
      addr,
      transports: [],
      stats: { poolCapacityBytes: 0n, poolUsedBytes: 0n, blocks: 0n, ssdCapacityBytes: 0n, ssdUsedBytes: 0n },
      registeredAtMs: nowMs,
      lastHeartbeatMs: nowMs,
    };
    this.bySlot[slot] = s;
    this.byId.set(nodeId, s);
    this.byAddr.set(addr, s);
    return s;
  }

  private moveAddr(s: NodeSession, addr: string): void {
    if (this.byAddr.get(s.addr) === s) this.byAddr.delete(s.addr);
    s.addr = addr;
    this.byAddr.set(addr, s);
  }
}
