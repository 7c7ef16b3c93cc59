// kvfabric-metaserver flags (DESIGN §4): defaults in code, kebab flags, KVFABRIC_* env fallback.
import { KvError, LOG_LEVELS, parseConfig, parseHostPort, type ConfigOf, type FlagSpecs } from '@kvfabric/common';

const hostPort = (v: string) => {
  try {
    parseHostPort(v);
    return undefined;
  } catch {
    return 'expected host:port';
  }
};

export const METASERVER_FLAGS = {
  addr: { kind: 'string', description: 'gRPC listen address (host:port; port 0 picks one)', default: '127.0.0.1:50056', validate: hostPort },
  'http-addr': { kind: 'string', description: 'HTTP address for /health and /metrics', default: '127.0.0.1:9156', validate: hostPort },
  'node-stale-secs': { kind: 'int', description: 'a node unseen this long is hidden from answers', default: 30, min: 1, max: 86_400 },
  'ttl-minutes': { kind: 'int', description: 'ownerships not re-inserted within this window are dropped', default: 120, min: 1, max: 525_600 },
  'sweep-interval-secs': { kind: 'int', description: 'how often the TTL and dead-session sweep runs', default: 10, min: 1, max: 3_600 },
  'etcd-endpoints': {
    kind: 'list',
    description: 'etcd endpoints for HA mode (host:port,...)',
    validate: (v: string[]) => v.map((e) => e.replace(/^https?:\/\//, '')).find((e) => hostPort(e)) === undefined ? undefined : 'expected host:port[,host:port...]',
  },
  'log-level': { kind: 'enum', description: 'log level', default: 'info', choices: LOG_LEVELS },
} satisfies FlagSpecs;

export type MetaserverConfig = ConfigOf<typeof METASERVER_FLAGS>;

export const SUMMARY = 'kvfabric-metaserver: the cluster index of which live node holds which KV block hashes.';

/** Parses argv/env into the config; throws one CONFIG_INVALID with every problem. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { config: MetaserverConfig; help: boolean } {
  const etcdProblem = '--etcd-endpoints: HA mode arrives with the etcd issue; run without it for a single metaserver';
  const etcdGiven = argv.some((a) => a === '--etcd-endpoints' || a.startsWith('--etcd-endpoints=')) || !!env.KVFABRIC_ETCD_ENDPOINTS;
  let parsed;
  try {
    parsed = parseConfig(METASERVER_FLAGS, argv, env);
  } catch (err) {
    // report every problem at once, the HA one included
    if (err instanceof KvError && etcdGiven && !err.message.includes('--etcd-endpoints')) {
      throw new KvError('CONFIG_INVALID', `${err.message}; ${etcdProblem}`);
    }
    throw err;
  }
  const { config, positionals, help } = parsed;
  const problems: string[] = [];
  if (positionals.length > 0) problems.push(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (config.etcdEndpoints) problems.push(etcdProblem);
  if (problems.length > 0 && !help) throw new KvError('CONFIG_INVALID', problems.join('; '));
  return { config, help };
}
