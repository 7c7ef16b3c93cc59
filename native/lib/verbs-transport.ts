// One-sided RDMA READs with libibverbs (loaded at run time with dlopen; the addon loads without rdma-core).
// RC queue pairs per (NIC, peer), the pool registered once per NIC, READs striped over NICs and QPs, a native
// thread polling the CQs. The NIC enforces the rkey for the whole registered pool: grants are NOT enforced
// per range here (that needs memory windows); tcp enforces them. Never run on a real device in this repo's CI:
// see native/README.md for how to test it on a host with a NIC.
import { callNative, checkKeys, checkObject, invalidArgument } from './errors.js';
import { binding } from './loader.js';
import { NativeTransport } from './native-transport.js';
import { nativeMemory, type Pool } from './pool.js';
import {
  checkBuffer,
  checkPeerId,
  checkPositiveInt,
  checkRanges,
  checkUint,
  materialHeader,
  readMaterialHeader,
  transportError,
  type Transport,
  type TransportCounters,
} from './transport.js';

export interface VerbsPortInfo {
  port: number;
  state: 'active' | 'down' | 'init';
  lid: number;
  activeMtu: number;
  linkLayer: 'ethernet' | 'infiniband';
  /** /sys/class/infiniband/<dev>/ports/<port>/rate, e.g. "200 Gb/sec (4X HDR)". */
  speed: string;
  /** Non-zero GIDs in table order, as 32 hex digits. */
  gids: string[];
}

export interface VerbsDeviceInfo {
  name: string;
  /** From /sys/class/infiniband/<dev>/device/numa_node; -1 when unknown. */
  numaNode: number;
  ports: VerbsPortInfo[];
}

export type VerbsAvailability = { ok: true } | { ok: false; reason: string };

export interface VerbsTransportOptions {
  pool: Pool;
  /** Device names (e.g. mlx5_0); default: every device with an active port. */
  nics?: string[];
  /** RC queue pairs per (NIC, peer). Default 4. */
  qpsPerPeer?: number;
  /** Port number on each NIC. Default 1. */
  portNum?: number;
  /** GID table index (RoCE v2 is often 3). Default 0. */
  gidIndex?: number;
  timeoutMs?: number;
}

/** Per-NIC handshake material: what the peer needs to bring its QPs to RTR/RTS and to address our pool. */
export interface VerbsNicMaterial {
  gid: Buffer;
  lid: number;
  /** ibv_mtu enum: 1=256 … 5=4096. */
  mtu: number;
  rkey: number;
  /** Address of pool offset 0 in the MR (0 when registered with iova 0). */
  base: bigint;
  qps: { qpn: number; psn: number }[];
}

export interface VerbsMaterial {
  nics: VerbsNicMaterial[];
}

export const MAX_VERBS_NICS = 16;
export const MAX_VERBS_QPS = 64;

interface RawProbe {
  ok: boolean;
  reason?: string;
  devices: (Omit<VerbsDeviceInfo, 'ports'> & { ports: (Omit<VerbsPortInfo, 'gids'> & { gids: Buffer[] })[] })[];
}

interface NativeVerbs {
  createQps(peerId: string, qpsPerNic: number): VerbsMaterial;
  connectQps(peerId: string, remote: VerbsMaterial): void;
  readv(peerId: string, grantId: number, r: Float64Array, l: Float64Array, n: Float64Array, timeoutMs: number): Promise<{ bytes: number }>;
  dropPeer(peerId: string): void;
  counters(): TransportCounters;
  close(): void;
}

/** Versioned little-endian encoding: header, u8 nic count, per NIC gid[16] u16 lid u8 mtu u32 rkey u64 base u8 qp count, qps (u32 qpn, u32 psn). */
export function encodeVerbsMaterial(m: VerbsMaterial): Buffer {
  const parts: Buffer[] = [materialHeader('verbs'), Buffer.from([m.nics.length])];
  for (const nic of m.nics) {
    const b = Buffer.alloc(16 + 2 + 1 + 4 + 8 + 1 + nic.qps.length * 8);
    nic.gid.copy(b, 0, 0, 16);
    let o = b.writeUInt16LE(nic.lid, 16);
    o = b.writeUInt8(nic.mtu, o);
    o = b.writeUInt32LE(nic.rkey, o);
    o = b.writeBigUInt64LE(nic.base, o);
    o = b.writeUInt8(nic.qps.length, o);
    for (const q of nic.qps) {
      o = b.writeUInt32LE(q.qpn, o);
      o = b.writeUInt32LE(q.psn, o);
    }
    parts.push(b);
  }
  return Buffer.concat(parts);
}

export function parseVerbsMaterial(buf: Buffer, field = 'material'): VerbsMaterial {
  const r = readMaterialHeader(buf, field, 'verbs');
  const count = r.u8('nic count');
  if (count < 1 || count > MAX_VERBS_NICS) r.fail(`nic count ${count} out of range 1..${MAX_VERBS_NICS}`);
  const nics: VerbsNicMaterial[] = [];
  for (let i = 0; i < count; i++) {
    const gid = r.bytes(16, `nics[${i}].gid`);
    const lid = r.u16(`nics[${i}].lid`);
    const mtu = r.u8(`nics[${i}].mtu`);
    if (mtu < 1 || mtu > 5) r.fail(`nics[${i}].mtu: expected an ibv_mtu in 1..5, got ${mtu}`);
    const rkey = r.u32(`nics[${i}].rkey`);
    const base = r.u64(`nics[${i}].base`);
    const nq = r.u8(`nics[${i}].qp count`);
    if (nq < 1 || nq > MAX_VERBS_QPS) r.fail(`nics[${i}].qp count ${nq} out of range 1..${MAX_VERBS_QPS}`);
    if (i > 0 && nq !== nics[0]!.qps.length) r.fail(`nics[${i}].qp count ${nq} differs from nics[0] (${nics[0]!.qps.length})`);
    const qps: { qpn: number; psn: number }[] = [];
    for (let j = 0; j < nq; j++) {
      const qpn = r.u32(`nics[${i}].qps[${j}].qpn`);
      const psn = r.u32(`nics[${i}].qps[${j}].psn`);
      if (qpn === 0 || qpn > 0xffffff) r.fail(`nics[${i}].qps[${j}].qpn: expected 1..0xffffff, got ${qpn}`);
      if (psn > 0xffffff) r.fail(`nics[${i}].qps[${j}].psn: expected a 24-bit value, got ${psn}`);
      qps.push({ qpn, psn });
    }
    nics.push({ gid, lid, mtu, rkey, base, qps });
  }
  r.end();
  return { nics };
}

function probe(): RawProbe {
  return callNative(() => binding().verbsProbe() as RawProbe);
}

export class VerbsTransport extends NativeTransport<NativeVerbs> implements Transport {
  readonly kind = 'verbs' as const;
  readonly #qpsPerPeer: number;

  private constructor(native: NativeVerbs, qpsPerPeer: number, timeoutMs: number, poolBytes: number) {
    super(native, { timeoutMs, poolBytes, label: 'verbs' });
    this.#qpsPerPeer = qpsPerPeer;
  }

  /** Whether a usable device (an active port) exists; the reason when not (dlopen error, no devices). */
  static available(): VerbsAvailability {
    const p = probe();
    return p.ok ? { ok: true } : { ok: false, reason: p.reason ?? 'unknown' };
  }

  static listDevices(): VerbsDeviceInfo[] {
    return probe().devices.map((d) => ({
      ...d,
      ports: d.ports.map((p) => ({ ...p, gids: p.gids.map((g) => g.toString('hex')) })),
    }));
  }

  static async create(options: VerbsTransportOptions): Promise<VerbsTransport> {
    const opts = checkObject('options', options);
    checkKeys('options', opts, ['pool', 'nics', 'qpsPerPeer', 'portNum', 'gidIndex', 'timeoutMs']);
    const pool = opts.pool as Pool;
    const poolNative = nativeMemory(pool, 'options.pool');
    const qpsPerPeer = checkPositiveInt('options.qpsPerPeer', opts.qpsPerPeer ?? 4, MAX_VERBS_QPS);
    const portNum = checkPositiveInt('options.portNum', opts.portNum ?? 1, 255);
    const gidIndex = checkUint('options.gidIndex', opts.gidIndex ?? 0, 255);
    const timeoutMs = checkPositiveInt('options.timeoutMs', opts.timeoutMs ?? 30_000, 24 * 3600 * 1000);
    let nics = opts.nics as string[] | undefined;
    if (nics !== undefined && (!Array.isArray(nics) || nics.length === 0 || nics.length > MAX_VERBS_NICS || !nics.every((n) => typeof n === 'string' && n.length > 0))) {
      throw invalidArgument('options.nics', `1..${MAX_VERBS_NICS} device names`, nics);
    }
    const p = probe();
    if (!p.ok) throw transportError('TRANSPORT_UNAVAILABLE', `verbs: ${p.reason ?? 'unavailable'}`);
    nics ??= p.devices.filter((d) => d.ports.some((x) => x.port === portNum && x.state === 'active')).map((d) => d.name);
    const Native = binding().VerbsTransportNative as new (...args: unknown[]) => NativeVerbs;
    const native = callNative(() => new Native(poolNative, nics, portNum, gidIndex));
    return new VerbsTransport(native, qpsPerPeer, timeoutMs, pool.sizeBytes);
  }

  async acceptPeer(peerId: string, peerMaterial: Buffer): Promise<Buffer> {
    this.open();
    checkPeerId('peerId', peerId);
    const remote = parseVerbsMaterial(checkBuffer('peerMaterial', peerMaterial), 'peerMaterial');
    const local = callNative(() => this.native.createQps(peerId, remote.nics[0]!.qps.length));
    callNative(() => this.native.connectQps(peerId, remote));
    return encodeVerbsMaterial(local);
  }

  async beginConnect(peerId: string): Promise<Buffer> {
    this.open();
    checkPeerId('peerId', peerId);
    return encodeVerbsMaterial(callNative(() => this.native.createQps(peerId, this.#qpsPerPeer)));
  }

  async completeConnect(peerId: string, serverMaterial: Buffer): Promise<void> {
    this.open();
    checkPeerId('peerId', peerId);
    const remote = parseVerbsMaterial(checkBuffer('serverMaterial', serverMaterial), 'serverMaterial');
    if (remote.nics[0]!.qps.length !== this.#qpsPerPeer) {
      throw invalidArgument('serverMaterial', `${this.#qpsPerPeer} queue pairs per NIC`, remote.nics[0]!.qps.length);
    }
    callNative(() => this.native.connectQps(peerId, remote));
  }

  /** Validated, then not enforced: the NIC checks the rkey of the whole pool (see the file comment). */
  addGrant(grantId: number, peerId: string, ranges: Float64Array, expiresAtMs: number): void {
    this.open();
    checkUint('grantId', grantId);
    checkPeerId('peerId', peerId);
    checkRanges('ranges', ranges, this.poolBytes);
    if (typeof expiresAtMs !== 'number' || !Number.isFinite(expiresAtMs)) {
      throw invalidArgument('expiresAtMs', 'a finite number of milliseconds since the epoch', expiresAtMs);
    }
  }

  removeGrant(grantId: number): void {
    checkUint('grantId', grantId);
  }
}
