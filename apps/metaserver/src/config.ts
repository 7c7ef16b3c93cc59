// kvfabric-metaserver flags (DESIGN §4): defaults in code, kebab flags, KVFABRIC_* env fallback.
import {
  ETCD_TLS_FLAGS,
  INSECURE_FLAG,
  KvError,
  TLS_FLAGS,
  checkEtcdEndpoints,
  checkPlaintextListen,
  echo,
  parseConfig,
  parseHostPort,
  etcdTlsRequested,
  tlsRequested,
  type ConfigOf,
  type FlagSpecs,
} from '@kvfabric/common';
import { LOG_LEVELS } from '@kvfabric/common/observability';

const hostPort = (v: string) => {
  try {
    parseHostPort(v);
    return undefined;
  } catch {
    return 'expected host:port';
  }
};

export const METASERVER_FLAGS = {
  addr: {
    kind: 'string',
    description: 'gRPC listen address (host:port; port 0 picks one)',
    default: '127.0.0.1:50056',
    validate: hostPort,
  },
  'http-addr': {
    kind: 'string',
    description: 'HTTP address for /health and /metrics',
    default: '127.0.0.1:9156',
    validate: hostPort,
  },
  'node-stale-secs': {
    kind: 'int',
    description: 'a node unseen this long is hidden from answers',
    default: 30,
    min: 1,
    max: 86_400,
  },
  'ttl-minutes': {
    kind: 'int',
    description:
      'a node silent this long is forgotten with its ownerships (sooner: 10 x --node-stale-secs); a heartbeating node keeps its blocks indexed',
    default: 120,
    min: 1,
    max: 525_600,
  },
  'sweep-interval-secs': {
    kind: 'int',
    description: 'how often the sweep forgets silent nodes',
    default: 10,
    min: 1,
    max: 3_600,
  },
  'max-blocks-per-node': {
    kind: 'int',
    description: 'ownerships one node may hold in the index; inserts past it are refused (RESOURCE_EXHAUSTED)',
    default: 16_777_216,
    min: 1,
  },
  'max-index-memory': {
    kind: 'size',
    description: 'bytes the index may take; inserts past it are refused (RESOURCE_EXHAUSTED)',
    default: 4 * 1024 ** 3,
    min: 1024 ** 2,
  },
  'max-connection-idle-secs': {
    kind: 'int',
    description: 'a gRPC connection with no call in flight this long is closed (clients reconnect on their next call)',
    default: 300,
    min: 1,
    max: 86_400,
  },
  'etcd-endpoints': {
    kind: 'list',
    description:
      'HA mode: etcd endpoints (host:port, http://host:port or https://host:port, comma separated); replicas elect a leader through etcd; plaintext only on loopback unless --insecure',
    validate: (v: string[]) =>
      v.map((e) => e.replace(/^https?:\/\//, '').replace(/\/$/, '')).find((e) => hostPort(e)) === undefined
        ? undefined
        : 'expected host:port[,host:port...]',
  },
  ...ETCD_TLS_FLAGS,
  'etcd-prefix': {
    kind: 'string',
    description: 'HA mode: etcd key prefix (the leader key is PREFIX/leader)',
    default: '/kvfabric',
    validate: (v: string) =>
      /^\/?[A-Za-z0-9._:/-]*$/.test(v) && !v.includes('//') ? undefined : 'expected a key prefix like /kvfabric',
  },
  'etcd-lease-ttl-secs': {
    kind: 'int',
    description: 'HA mode: leader lease TTL; a dead leader is replaced after about this long',
    default: 5,
    min: 1,
    max: 60,
  },
  'advertise-addr': {
    kind: 'string',
    description:
      'HA mode: address published in the leader key for nodes and the CLI (default: --addr with its bound port)',
    default: '',
    validate: (v: string) => (v === '' ? undefined : hostPort(v)),
  },
  'replica-id': {
    kind: 'string',
    description: "HA mode: this replica's name in the leader key (default: hostname-pid)",
    default: '',
  },
  ...TLS_FLAGS,
  ...INSECURE_FLAG,
  namespaces: {
    kind: 'string',
    description:
      'namespace policy file (JSON {"ROLE/NAME": ["namespace", ...] | "*"}): which namespaces each certificate identity may use',
  },
  'log-level': { kind: 'enum', description: 'log level', default: 'info', choices: LOG_LEVELS },
} satisfies FlagSpecs;

export type MetaserverConfig = ConfigOf<typeof METASERVER_FLAGS>;

export const SUMMARY = 'kvfabric-metaserver: the cluster index of which live node holds which KV block hashes.';

/** Parses argv/env into the config; throws one CONFIG_INVALID with every problem. */
export function loadConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): { config: MetaserverConfig; help: boolean; insecureEtcd: string[] } {
  const { config, positionals, help } = parseConfig(METASERVER_FLAGS, argv, env);
  const problems: string[] = [];
  if (positionals.length > 0) problems.push(`unexpected argument ${echo(positionals[0])}`);
  if (config.etcdEndpoints?.length === 0) problems.push('etcd-endpoints: expected host:port[,host:port...], got ""');
  if (config.etcdEndpoints && config.advertiseAddr === '' && isWildcard(config.addr)) {
    problems.push(
      `advertise-addr: required in HA mode when --addr listens on a wildcard address (${config.addr}); give the address nodes should dial`,
    );
  }
  let insecureEtcd: string[] = [];
  for (const check of [
    () => tlsRequested(config) || checkPlaintextListen(config.addr, 'addr', config.insecure),
    () => config.namespaces === undefined || tlsRequested(config) || fail('namespaces: needs mutual TLS (--tls-*)'),
    () => {
      const tls = etcdTlsRequested(config);
      if (config.etcdEndpoints)
        insecureEtcd = checkEtcdEndpoints(config.etcdEndpoints, tls, config.insecure, 'etcd-endpoints');
      else if (tls) fail('etcd-ca: only with --etcd-endpoints (HA mode)');
    },
  ]) {
    try {
      check();
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length > 0 && !help) throw new KvError('CONFIG_INVALID', problems.join('; '));
  return { config, help, insecureEtcd };
}

function fail(message: string): never {
  throw new KvError('CONFIG_INVALID', message);
}

function isWildcard(addr: string): boolean {
  const { host } = parseHostPort(addr);
  return host === '0.0.0.0' || host === '::' || host === '';
}
