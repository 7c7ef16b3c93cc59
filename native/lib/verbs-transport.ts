// One-sided RDMA READs with libibverbs (loaded at run time with dlopen; the addon loads without rdma-core).
//
// Per NIC: the pool registered once (off the JS thread), one CQ with a completion channel, one native worker
// thread. Per peer and direction: RC queue pairs — reading QPs (which grant the peer nothing) and serving QPs
// (through which the peer reads) are separate, so two nodes pulling from each other never disturb one another.
// Grants are type-2 memory windows bound to the reader's QPs, covering exactly the granted pages; the reader gets
// the windows' rkeys (never the pool's), and `removeGrant` settles only once every window is invalidated.
// Devices without type-2 windows are refused unless `allowPoolRkey` (then any connected peer can read the pool).
import { callNative, checkKeys, checkObject, invalidArgument, toNativeError } from './errors.js';
import { binding } from './loader.js';
import { NativeTransport, type NativeTransportCore } from './native-transport.js';
import { nativeMemory, type Pool } from './pool.js';
import {
  checkBuffer,
  checkGrantId,
  checkPeerId,
  checkPositiveInt,
  checkRanges,
  checkUint,
  transportError,
  type GrantId,
  type Transport,
  type TransportCounters,
  type TransportEvent,
} from './transport.js';
import { parseVerbsGrantKey } from './verbs-grant.js';
import { encodeVerbsMaterial, parseVerbsMaterial, type VerbsMaterial } from './verbs-material.js';

export * from './verbs-grant.js';
export * from './verbs-material.js';

export interface VerbsGidInfo {
  index: number;
  /** 32 hex digits. */
  gid: string;
  type: 'RoCE v2' | 'RoCE v1' | 'IB';
}

export interface VerbsPortInfo {
  port: number;
  state: 'active' | 'down' | 'init';
  lid: number;
  activeMtu: number;
  linkLayer: 'ethernet' | 'infiniband';
  /** /sys/class/infiniband/<dev>/ports/<port>/rate, e.g. "200 Gb/sec (4X HDR)". */
  speed: string;
  maxMsg: number;
  /** Non-zero GIDs (the first 16 entries of the table) with their types. */
  gids: VerbsGidInfo[];
  /** The GID index the transport would choose (RoCE v2, IPv4-mapped first); -1 with `gidReason` when none fits. */
  gidIndex: number;
  gidReason?: string;
}

export interface VerbsDeviceInfo {
  name: string;
  /** From /sys/class/infiniband/<dev>/device/numa_node; -1 when unknown. */
  numaNode: number;
  maxMw: number;
  /** Type-2 memory windows (what per-grant enforcement needs). */
  mwType2: boolean;
  maxQpWr: number;
  maxCqe: number;
  maxQpRdAtom: number;
  ports: VerbsPortInfo[];
}

/** What an opened NIC ended up with (limits clamped to the device). */
export interface VerbsNicInfo {
  name: string;
  numaNode: number;
  gidIndex: number;
  gidType: string;
  gid: string;
  linkLayer: 'ethernet' | 'infiniband';
  mtu: number;
  qpDepth: number;
  cqDepth: number;
  rdAtomInit: number;
  rdAtomResp: number;
  maxMsg: number;
  maxMw: number;
  mwType2: boolean;
  registerMs: number;
  /** The pool MR's own rkey: with windows it grants nothing remotely (tests prove the NIC refuses it). */
  poolRkey: number;
}

export type VerbsAvailability = { ok: true; reason: string } | { ok: false; reason: string };

export interface VerbsTransportOptions {
  pool: Pool;
  /** Device names (e.g. mlx5_0); default: every device with an active port and a usable GID. */
  nics?: string[];
  /** RC queue pairs per (local NIC, peer), each direction. Default 4. */
  qpsPerPeer?: number;
  /** Port number on each NIC. Default 1. */
  portNum?: number;
  /** GID table index; default 'auto' (the RoCE v2 entry, IPv4-mapped first; never a zero GID). */
  gidIndex?: number | 'auto';
  /** Default per-batch deadline; a batch past it fails TRANSPORT_TIMEOUT and its connection is torn down. */
  timeoutMs?: number;
  /** Send queue depth per QP (clamped to max_qp_wr), at most 32768. Default 256. */
  queueDepth?: number;
  /** CQ entries per NIC (clamped to max_cqe); posting never lets more completions be outstanding. Default 16384. */
  cqDepth?: number;
  /** RDMA READs in flight per QP (max_rd_atomic), clamped to the device's and the peer's limits. Default 16. */
  readDepth?: number;
  /**
   * READs posted to a QP at once (at least readDepth); the rest wait in the worker and are posted as READs
   * complete. A NIC holds only readDepth in flight anyway; a longer send queue only delays other work. Default 32.
   */
  postDepth?: number;
  /** Longest single RDMA READ; longer descriptors are split (also at the port's max_msg_sz). Default 1 MiB. */
  sliceBytes?: number;
  /** Largest memory window a grant binds; ranges are cut into windows spread over the reader's QPs. Default 1 MiB. */
  windowBytes?: number;
  /** GRH traffic class (RoCE: DSCP << 2, e.g. 106 for a lossless class). Default 0. */
  trafficClass?: number;
  serviceLevel?: number;
  /** Local ACK timeout exponent: 4.096 µs × 2^n per try. Default 14 (67 ms). */
  ackTimeout?: number;
  /** Transport retries, 0..6 (7 means "forever" on some devices, and the batch deadline must end a stuck read). */
  retryCount?: number;
  /** Serve reads through the pool's own rkey when the device has no type-2 memory windows (unsafe; logged). */
  allowPoolRkey?: boolean;
  /** How long a worker spins after its last completion before sleeping on the completion channel. Default 20. */
  busyPollUs?: number;
  onEvent?: (event: TransportEvent) => void;
}

const OPTION_KEYS = [
  'pool',
  'nics',
  'qpsPerPeer',
  'portNum',
  'gidIndex',
  'timeoutMs',
  'queueDepth',
  'cqDepth',
  'readDepth',
  'postDepth',
  'sliceBytes',
  'windowBytes',
  'trafficClass',
  'serviceLevel',
  'ackTimeout',
  'retryCount',
  'allowPoolRkey',
  'busyPollUs',
  'onEvent',
] as const;

export const MAX_VERBS_NICS = 16;
export const MAX_VERBS_QPS = 64;

interface RawProbe {
  ok: boolean;
  reason?: string;
  devices: (Omit<VerbsDeviceInfo, 'ports'> & {
    ports: (Omit<VerbsPortInfo, 'gids'> & { gids: { index: number; gid: Buffer; type: VerbsGidInfo['type'] }[] })[];
  })[];
}

interface NativeVerbs extends NativeTransportCore {
  start(): Promise<{ bytes: number }>;
  info(): (Omit<VerbsNicInfo, 'gid'> & { gid: Buffer })[];
  createQps(peerId: string, qpsPerNic: number): VerbsMaterial;
  connectQps(peerId: string, remote: VerbsMaterial): void;
  acceptQps(peerId: string, remote: VerbsMaterial): VerbsMaterial;
  addGrant(
    grantId: Buffer,
    peerId: string,
    ranges: Float64Array,
    ttlMs: number,
    windowBytes: number,
  ): Promise<{ data: Buffer }>;
  removeGrant(grantId: Buffer): Promise<{ bytes: number }>;
  counters(): VerbsCounters;
}

export interface VerbsCounters extends TransportCounters {
  timeouts: number;
  windowsBound: number;
  windowsInvalidated: number;
  bindFailures: number;
  asyncEvents: number;
  brokenConnections: number;
  /** ibv_post_send calls; each posts a chain of `workRequests / posts` WRs on average. */
  posts: number;
  workRequests: number;
  /** Work completions polled: one per WR that asked for one (a READ every quarter of `postDepth`, at the end of its
   * batch and of its chain; every bind and invalidation), plus every WR that failed or was flushed. */
  completions: number;
  /** READs in the NICs' send queues right now. */
  readsPosted: number;
  /** Times a NIC worker slept on its completion channel, and how many of those a completion ended. */
  sleeps: number;
  cqWakeups: number;
  liveGrants: number;
}

function probe(): RawProbe {
  return callNative(() => binding().verbsProbe() as RawProbe);
}

function intOption(opts: Record<string, unknown>, key: string, dflt: number, min: number, max: number): number {
  const v = opts[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidArgument(`options.${key}`, `an integer in [${min}, ${max}]`, v);
  }
  return v;
}

export class VerbsTransport extends NativeTransport<NativeVerbs> implements Transport {
  readonly kind = 'verbs' as const;
  readonly #qpsPerPeer: number;
  readonly #windowBytes: number;
  /** Keys already validated (readv is called many times with one grant's key). */
  readonly #checkedKeys = new WeakSet<Buffer>();

  private constructor(
    native: NativeVerbs,
    opts: { qpsPerPeer: number; windowBytes: number; timeoutMs: number; poolBytes: number },
  ) {
    super(native, { timeoutMs: opts.timeoutMs, poolBytes: opts.poolBytes, label: 'verbs' });
    this.#qpsPerPeer = opts.qpsPerPeer;
    this.#windowBytes = opts.windowBytes;
  }

  /** Whether a usable device exists (an active port with a usable GID), and why (not). */
  static available(options: { allowPoolRkey?: boolean } = {}): VerbsAvailability {
    const p = probe();
    if (!p.ok) return { ok: false, reason: p.reason ?? 'unknown' };
    const usable = p.devices.filter((d) => d.ports.some((x) => x.state === 'active' && x.gidIndex >= 0));
    const withMw = usable.filter((d) => d.mwType2);
    const names = usable.map((d) => d.name).join(', ');
    if (withMw.length === 0 && !options.allowPoolRkey) {
      return {
        ok: false,
        reason: `RDMA devices ${names} lack type-2 memory windows (per-grant protection); --verbs-allow-pool-rkey overrides`,
      };
    }
    return { ok: true, reason: `RDMA devices with an active port: ${names}` };
  }

  static listDevices(): VerbsDeviceInfo[] {
    return probe().devices.map((d) => ({
      ...d,
      ports: d.ports.map((p) => ({ ...p, gids: p.gids.map((g) => ({ ...g, gid: g.gid.toString('hex') })) })),
    }));
  }

  static async create(options: VerbsTransportOptions): Promise<VerbsTransport> {
    const opts = checkObject('options', options);
    checkKeys('options', opts, OPTION_KEYS);
    const pool = opts.pool as Pool;
    const poolNative = nativeMemory(pool, 'options.pool');
    const qpsPerPeer = checkPositiveInt('options.qpsPerPeer', opts.qpsPerPeer ?? 4, MAX_VERBS_QPS);
    const portNum = checkPositiveInt('options.portNum', opts.portNum ?? 1, 255);
    const gidIndex =
      opts.gidIndex === undefined || opts.gidIndex === 'auto' ? -1 : checkUint('options.gidIndex', opts.gidIndex, 255);
    const timeoutMs = checkPositiveInt('options.timeoutMs', opts.timeoutMs ?? 30_000, 24 * 3600 * 1000);
    const retryCount = opts.retryCount ?? 6;
    if (retryCount === 7) {
      throw invalidArgument(
        'options.retryCount',
        'an integer in [0, 6] (7 retries forever on some devices)',
        retryCount,
      );
    }
    const config = {
      portNum,
      gidIndex,
      queueDepth: intOption(opts, 'queueDepth', 256, 1, 1 << 15),
      cqDepth: intOption(opts, 'cqDepth', 16384, 16, 1 << 22),
      readDepth: intOption(opts, 'readDepth', 16, 1, 255),
      postDepth: intOption(opts, 'postDepth', 32, 1, 1 << 16),
      sliceBytes: intOption(opts, 'sliceBytes', 1 << 20, 4096, 1 << 30),
      trafficClass: intOption(opts, 'trafficClass', 0, 0, 255),
      serviceLevel: intOption(opts, 'serviceLevel', 0, 0, 15),
      ackTimeout: intOption(opts, 'ackTimeout', 14, 1, 31),
      retryCount: intOption(opts, 'retryCount', 6, 0, 6),
      allowPoolRkey: opts.allowPoolRkey ?? false,
      busyPollUs: intOption(opts, 'busyPollUs', 20, 0, 1_000_000),
      nics: [] as string[],
    };
    const windowBytes = intOption(opts, 'windowBytes', 1 << 20, 4096, 1 << 30);
    if (typeof config.allowPoolRkey !== 'boolean')
      throw invalidArgument('options.allowPoolRkey', 'a boolean', config.allowPoolRkey);
    if (opts.onEvent !== undefined && typeof opts.onEvent !== 'function')
      throw invalidArgument('options.onEvent', 'a function', opts.onEvent);
    let nics = opts.nics as string[] | undefined;
    if (
      nics !== undefined &&
      (!Array.isArray(nics) ||
        nics.length === 0 ||
        nics.length > MAX_VERBS_NICS ||
        !nics.every((n) => typeof n === 'string' && n.length > 0))
    ) {
      throw invalidArgument('options.nics', `1..${MAX_VERBS_NICS} device names`, nics);
    }
    const p = probe();
    if (p.devices.length === 0) throw transportError('TRANSPORT_UNAVAILABLE', `verbs: ${p.reason ?? 'unavailable'}`);
    nics ??= p.devices
      .filter((d) =>
        d.ports.some((x) => x.port === portNum && x.state === 'active' && (gidIndex >= 0 || x.gidIndex >= 0)),
      )
      .map((d) => d.name);
    if (nics.length === 0)
      throw transportError('TRANSPORT_UNAVAILABLE', `verbs: no device has an active port ${portNum} with a usable GID`);
    config.nics = nics;
    const Native = binding().VerbsTransportNative as new (...args: unknown[]) => NativeVerbs;
    const native = callNative(() => new Native(poolNative, config, opts.onEvent));
    try {
      await native.start();
    } catch (err) {
      native.close();
      throw toNativeError(err);
    }
    return new VerbsTransport(native, { qpsPerPeer, windowBytes, timeoutMs, poolBytes: pool.sizeBytes });
  }

  /** The opened NICs: chosen GID, clamped limits, registration time. */
  nics(): VerbsNicInfo[] {
    this.open();
    return this.native.info().map((n) => ({ ...n, gid: n.gid.toString('hex') }));
  }

  override counters(): VerbsCounters {
    return this.native.counters();
  }

  async acceptPeer(peerId: string, peerMaterial: Buffer): Promise<Buffer> {
    this.open();
    checkPeerId('peerId', peerId);
    const remote = parseVerbsMaterial(checkBuffer('peerMaterial', peerMaterial), 'peerMaterial');
    const local = callNative(() => this.native.acceptQps(peerId, remote));
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
    const ours = this.#qpsPerPeer * this.native.info().length;
    if (remote.qps.length !== ours)
      throw invalidArgument('serverMaterial', `${ours} queue pairs (one per ours)`, remote.qps.length);
    callNative(() => this.native.connectQps(peerId, remote));
  }

  /** Binds one memory window per piece of `ranges` to the reader's QPs; resolves with the key the reader needs. */
  addGrant(grantId: GrantId, peerId: string, ranges: Float64Array, expiresAtMs: number): Promise<Buffer> {
    this.open();
    const id = checkGrantId('grantId', grantId);
    checkPeerId('peerId', peerId);
    checkRanges('ranges', ranges, this.poolBytes);
    if (typeof expiresAtMs !== 'number' || !Number.isFinite(expiresAtMs)) {
      throw invalidArgument('expiresAtMs', 'a finite number of milliseconds since the epoch', expiresAtMs);
    }
    const ttlMs = Math.max(0, Math.floor(expiresAtMs - Date.now()));
    const p = callNative(() => this.native.addGrant(id, peerId, ranges, ttlMs, this.#windowBytes));
    return p.then(
      (r) => r.data,
      (err: unknown) => {
        throw toNativeError(err);
      },
    );
  }

  /** Settles once every window of the grant is invalidated: the granted pages may be reused after that. */
  async removeGrant(grantId: GrantId): Promise<void> {
    const id = checkGrantId('grantId', grantId);
    if (this.closed) return;
    await this.native.removeGrant(id).catch((err: unknown) => {
      throw toNativeError(err);
    });
  }

  protected override checkGrantKey(key: Buffer | undefined): Buffer {
    if (key === undefined) throw invalidArgument('options.grantKey', "the key from the serving node's grant", key);
    if (!this.#checkedKeys.has(key)) {
      parseVerbsGrantKey(key, 'options.grantKey');
      this.#checkedKeys.add(key);
    }
    return key;
  }
}
