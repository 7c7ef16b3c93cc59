// kvfabric-node flags (DESIGN §4). Every flag also reads KVFABRIC_<FLAG>.
import {
  ETCD_TLS_FLAGS,
  INSECURE_FLAG,
  KvError,
  TLS_FLAGS,
  checkPlaintextListen,
  parseConfig,
  parseSize,
  tlsRequested,
  type ConfigOf,
  type FlagSpecs,
} from '@kvfabric/common';
import { LOG_LEVELS } from '@kvfabric/common/observability';
import { checkEtcdSecurity, parseEtcdAddr } from '@kvfabric/client';

const hostPort = (v: string) => (/^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/.test(v) ? undefined : 'expected host:port');
/** host:port, or etcd://host:port[,host:port...][/prefix] (HA: follow the leader named in etcd). */
const metaserverAddr = (v: string) => {
  try {
    return parseEtcdAddr(v)
      ? undefined
      : hostPort(v) && 'expected host:port or etcd://host:port[,host:port...][/prefix]';
  } catch {
    return 'expected etcd://host:port[,host:port...][/prefix]';
  }
};

const SHARE = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/;

function poolShareProblem(v: string): string | undefined {
  const share = SHARE.exec(v);
  if (share) {
    const pct = Number(share[1]);
    return pct > 0 && pct <= 100 ? undefined : 'expected a share of the pool in (0%, 100%]';
  }
  try {
    return parseSize(v) > 0 ? undefined : 'expected a size above 0';
  } catch {
    return 'expected a size like 8gib or a share of the pool like 50%';
  }
}

/** --grant-pin-budget in bytes for a pool of `poolBytes` (the flag was validated by poolShareProblem). */
export function grantPinBudgetBytes(flag: string, poolBytes: number): number {
  const share = SHARE.exec(flag);
  return share ? Math.floor((poolBytes * Number(share[1])) / 100) : parseSize(flag);
}

export const NODE_FLAGS = {
  addr: {
    kind: 'string',
    description: 'peer gRPC address, host:port (routable from other nodes)',
    default: '127.0.0.1:50057',
    validate: hostPort,
  },
  'engine-socket': {
    kind: 'string',
    description: 'unix socket path for local engines',
    default: '/run/kvfabric/engine.sock',
  },
  'engine-socket-mode': {
    kind: 'string',
    description: 'permissions of the engine socket and its region handover socket (<engine-socket>.regions), octal',
    default: '0660',
    validate: (v: string) => (/^0?[0-7]{3}$/.test(v) ? undefined : 'expected an octal mode like 0660'),
  },
  'engine-socket-group': {
    kind: 'string',
    description: 'group (name or gid) that owns the engine sockets: engines in it may connect (mode 0660)',
    validate: (v: string) =>
      /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/.test(v) ? undefined : 'expected a group name or gid',
  },
  'engine-addr': {
    kind: 'string',
    description: 'also serve the engine API on this loopback host:port',
    validate: hostPort,
  },
  'metaserver-addr': {
    kind: 'string',
    description:
      'metaserver host:port, or etcd://host:port[,host:port]/prefix to follow the HA leader (unset: local-only node)',
    validate: metaserverAddr,
  },
  ...ETCD_TLS_FLAGS,
  'pool-size': { kind: 'size', description: 'DRAM pool size', default: 1024 ** 3, min: 4096 },
  hugepages: {
    kind: 'bool',
    description: 'back the pool with explicit huge pages (falls back with a log line)',
    default: false,
  },
  transport: {
    kind: 'enum',
    choices: ['auto', 'verbs', 'tcp'],
    description: 'one-sided read transport',
    default: 'auto',
  },
  nics: { kind: 'list', description: 'RDMA devices to use (default: all)' },
  'tcp-data-port': {
    kind: 'int',
    description: "tcp transport: the data server's port, on --addr's host (0: any free port)",
    default: 0,
    min: 0,
    max: 65535,
  },
  'tcp-advertise-addr': {
    kind: 'string',
    description: 'tcp transport: host:port peers connect to for data (NAT, a proxy); default: the data server itself',
    validate: hostPort,
  },
  'streams-per-peer': {
    kind: 'int',
    description: 'transport connections per peer (verbs: QPs per NIC and peer)',
    default: 4,
    min: 1,
    max: 64,
  },
  'verbs-port': { kind: 'int', description: 'verbs: port number on each RDMA device', default: 1, min: 1, max: 255 },
  'verbs-gid-index': {
    kind: 'int',
    description: 'verbs: GID table index (default: the RoCE v2 entry, IPv4-mapped first)',
    min: 0,
    max: 255,
  },
  'verbs-traffic-class': {
    kind: 'int',
    description: 'verbs: GRH traffic class (RoCE: DSCP << 2, e.g. 106)',
    default: 0,
    min: 0,
    max: 255,
  },
  'verbs-service-level': { kind: 'int', description: 'verbs: service level', default: 0, min: 0, max: 15 },
  'verbs-ack-timeout': {
    kind: 'int',
    description: 'verbs: local ACK timeout exponent (4.096 us * 2^n per try)',
    default: 14,
    min: 1,
    max: 31,
  },
  'verbs-retry-count': {
    kind: 'int',
    description: 'verbs: transport retries before a READ fails (7 would retry forever on rxe)',
    default: 6,
    min: 0,
    max: 6,
  },
  'verbs-allow-pool-rkey': {
    kind: 'bool',
    description:
      'verbs: on devices without type-2 memory windows, let peers read through the pool-wide rkey (grants then limit nothing)',
    default: false,
  },
  'ssd-path': {
    kind: 'list',
    description:
      'SSD tier: directories, comma-separated (one per NVMe drive); each holds a data file and its journal (unset: DRAM only)',
    validate: (v: string[]) =>
      v.some((p) => !p.startsWith('/'))
        ? 'expected absolute directory paths'
        : new Set(v).size !== v.length
          ? 'a directory is named twice'
          : undefined,
  },
  'ssd-capacity': {
    kind: 'size',
    description: 'SSD tier: bytes used on EACH --ssd-path (the tier holds this times the number of paths)',
    min: 16 * 1024 ** 2,
  },
  'ssd-write-mode': {
    kind: 'enum',
    choices: ['evict', 'through'],
    description:
      'SSD tier: evict writes the blocks DRAM will evict next, ahead of eviction; through writes every block as it seals',
    default: 'evict',
  },
  'ssd-wipe': {
    kind: 'bool',
    description: 'SSD tier: start empty (forget what the journals recorded) instead of recovering the blocks on SSD',
    default: false,
  },
  'lease-ttl-secs': { kind: 'number', description: 'lifetime of a Query lease', default: 30, min: 0.05 },
  'grant-ttl-secs': { kind: 'number', description: 'lifetime of a peer read grant', default: 30, min: 0.05 },
  'grant-pin-budget': {
    kind: 'string',
    description:
      'pool bytes all peer read grants together may pin: a size (8gib) or a share of the pool (50%); past it PrepareRead answers RESOURCE_EXHAUSTED',
    default: '50%',
    validate: (v: string) => poolShareProblem(v),
  },
  'max-readers': {
    kind: 'int',
    description:
      'peers admitted to read from this node at once (past it a new one displaces the least recently used idle one)',
    default: 1024,
    min: 1,
  },
  'reader-idle-secs': {
    kind: 'number',
    description:
      'a reading peer idle this long (and holding no grant) is forgotten; it handshakes again when it returns',
    default: 600,
    min: 0.05,
  },
  'reader-stall-secs': {
    kind: 'number',
    description:
      'tcp: a reader connection that takes none of its queued answers for this long is closed (queued answers keep granted pages pinned)',
    default: 30,
    min: 0.05,
  },
  'pull-timeout-secs': {
    kind: 'number',
    description: 'a remote pull ends with what arrived after this long',
    default: 5,
    min: 0.05,
  },
  'pull-chunk-bytes': {
    kind: 'size',
    description: 'bytes per transport read batch (a failed batch loses only its blocks)',
    default: 16 * 1024 ** 2,
    min: 4096,
  },
  'pull-max-bytes-per-sec': {
    kind: 'size',
    description: "cap on this node's pull bandwidth (0: none)",
    default: 0,
    min: 0,
  },
  'pull-backoff-secs': {
    kind: 'number',
    description: 'a peer that failed a pull is skipped this long',
    default: 5,
    min: 0,
  },
  'max-connection-idle-secs': {
    kind: 'int',
    description: 'a peer gRPC connection (--addr) with no call in flight this long is closed (peers reconnect)',
    default: 300,
    min: 1,
    max: 86_400,
  },
  'pull-suspect-secs': {
    kind: 'number',
    description: 'a peer that served a page differing from its checksum is not pulled from for this long',
    default: 300,
    min: 0,
  },
  'heartbeat-interval-secs': { kind: 'number', description: 'metaserver heartbeat period', default: 2, min: 0.05 },
  'readvertise-blocks-per-sec': {
    kind: 'number',
    description: 'pace of the re-advertise of every resident block to a new metaserver epoch (0: unpaced)',
    default: 200_000,
    min: 0,
  },
  'copy-threads': { kind: 'int', description: 'copy engine worker threads', default: 2, min: 1, max: 256 },
  'http-addr': {
    kind: 'string',
    description: 'health and metrics host:port',
    default: '127.0.0.1:9101',
    validate: hostPort,
  },
  ...TLS_FLAGS,
  ...INSECURE_FLAG,
  namespaces: {
    kind: 'string',
    description:
      'namespace policy file (JSON {"ROLE/NAME": ["namespace", ...] | "*"}): which namespaces each peer identity may read',
  },
  'log-level': { kind: 'enum', choices: LOG_LEVELS, description: 'log level', default: 'info' },
} satisfies FlagSpecs;

export type NodeConfig = ConfigOf<typeof NODE_FLAGS>;

/**
 * Parses argv/env; without TLS the peer and engine tcp addresses must be loopback unless --insecure, and so must the
 * etcd endpoints of an etcd:// metaserver address without --etcd-ca (`insecureEtcd`: those --insecure let through).
 */
export function parseNodeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  const parsed = parseConfig(NODE_FLAGS, argv, env);
  if (parsed.help) return { ...parsed, insecureEtcd: [] as string[] };
  const { config } = parsed;
  const problems: string[] = [];
  const tls = (() => {
    try {
      return tlsRequested(config);
    } catch (err) {
      problems.push((err as Error).message);
      return true;
    }
  })();
  const plaintext: [string | undefined, string][] = [
    [config.addr, 'addr'],
    [config.engineAddr, 'engine-addr'],
  ];
  for (const [addr, flag] of plaintext) {
    if (addr === undefined || (tls && flag === 'addr')) continue;
    try {
      // the engine API over tcp is plaintext even with TLS: it is for engines on this host
      checkPlaintextListen(addr, flag, flag === 'addr' && config.insecure);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (config.namespaces !== undefined && !tls) problems.push('namespaces: needs mutual TLS (--tls-*)');
  const ssd = config.ssdPath !== undefined && config.ssdPath.length > 0;
  if (ssd && config.ssdCapacity === undefined)
    problems.push('ssd-capacity: required with --ssd-path (bytes per path, like 2tb)');
  if (!ssd && config.ssdCapacity !== undefined) problems.push('ssd-capacity: needs --ssd-path');
  if (!ssd && config.ssdWipe) problems.push('ssd-wipe: needs --ssd-path');
  let insecureEtcd: string[] = [];
  try {
    insecureEtcd = checkEtcdSecurity(config.metaserverAddr, config, config.insecure);
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (problems.length > 0) throw new KvError('CONFIG_INVALID', problems.join('; '));
  return { ...parsed, insecureEtcd };
}
