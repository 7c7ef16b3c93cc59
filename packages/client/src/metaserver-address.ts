// Metaserver addresses: a plain `host:port`, or `etcd://host:port[,host:port...][/prefix]` (prefix default
// /kvfabric) naming the etcd cluster whose leader key says which replica leads (HA mode). Pure parsing: nothing here
// dials or loads etcd3.
import {
  KvError,
  checkEtcdEndpoints,
  echo,
  etcdTlsRequested,
  formatHostPort,
  invalid,
  parseHostPort,
  type EtcdTlsPaths,
} from '@kvfabric/common';

/** Default metaserver address (DESIGN §4). */
export const DEFAULT_METASERVER_ADDR = '127.0.0.1:50056';
/** The etcd key prefix of an `etcd://host:port` address without a path (the metaserver's `--etcd-prefix` default). */
export const DEFAULT_ETCD_PREFIX = '/kvfabric';

export interface EtcdTarget {
  /** "host:port" each. */
  endpoints: string[];
  /** Normalized: "/kvfabric". */
  prefix: string;
}

/** Where to reach a metaserver: one address, or the leader named in etcd (HA mode). */
export type MetaserverAddress =
  | {
      kind: 'direct';
      /** grpc-js target ("127.0.0.1:50056", "[::1]:50056"). */
      target: string;
    }
  | { kind: 'etcd'; etcd: EtcdTarget };

/** The one place that turns a user-given metaserver address (`host:port` or `etcd://h:p[,h:p][/prefix]`) into something to dial. */
export function resolveMetaserverAddr(addr: string, field = 'metaserver-addr'): MetaserverAddress {
  const text = (addr ?? '').trim();
  const etcd = parseEtcdAddr(text, field);
  if (etcd) return { kind: 'etcd', etcd };
  const hp = parseHostPort(text, field);
  if (hp.port === 0) throw invalid(field, 'expected a port 1..65535', addr);
  return { kind: 'direct', target: formatHostPort(hp) };
}

/**
 * A leader's address as found in a trailer or the leader key, as a grpc-js target; undefined when it is not a
 * plain host:port (a leader is never named by an etcd:// address).
 */
export function leaderTarget(addr: string, field: string): string | undefined {
  try {
    const resolved = resolveMetaserverAddr(addr, field);
    return resolved.kind === 'direct' ? resolved.target : undefined;
  } catch {
    return undefined;
  }
}

/** `etcd://h:p,h:p/prefix` → endpoints and prefix; undefined when `addr` is not an etcd:// address. */
export function parseEtcdAddr(addr: string, field = 'metaserver-addr'): EtcdTarget | undefined {
  const text = (addr ?? '').trim();
  const m = /^etcd:\/\/([^/]*)(\/.*)?$/i.exec(text);
  if (!m) return undefined;
  const hosts = m[1]!
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h.length > 0);
  if (hosts.length === 0) throw invalid(field, 'expected etcd://host:port[,host:port...][/prefix]', addr);
  for (const h of hosts) {
    try {
      const { port } = parseHostPort(h, field);
      if (port === 0) throw new Error('port 0');
    } catch {
      throw invalid(field, `expected etcd://host:port[,host:port...][/prefix]; bad endpoint ${echo(h)}`, addr);
    }
  }
  const path = (m[2] ?? '').replace(/\/+$/, '');
  if (path !== '' && !/^\/[A-Za-z0-9._:/-]+$/.test(path)) {
    throw invalid(field, 'expected an etcd key prefix like /kvfabric after the endpoints', addr);
  }
  return { endpoints: hosts, prefix: path === '' ? DEFAULT_ETCD_PREFIX : path };
}

/**
 * The etcd TLS flags beside a metaserver address: they need an etcd:// address, and without them the address's etcd
 * endpoints follow the loopback rule (plaintext off loopback only with `insecure`). Throws CONFIG_INVALID naming
 * the flag; returns the plaintext endpoints off loopback that `insecure` let through, for the warning at start.
 */
export function checkEtcdSecurity(
  addr: string | undefined,
  paths: EtcdTlsPaths,
  insecure: boolean,
  field = 'metaserver-addr',
): string[] {
  const tls = etcdTlsRequested(paths);
  const target = addr === undefined ? undefined : parseEtcdAddr(addr, field);
  if (target) return checkEtcdEndpoints(target.endpoints, tls, insecure, field);
  if (tls) throw new KvError('CONFIG_INVALID', `etcd-ca: only with an etcd://host:port[/prefix] --${field}`);
  return [];
}

/** `--etcd-endpoints` + `--etcd-prefix` in the etcd:// form. */
export function etcdAddr(endpoints: readonly string[], prefix = DEFAULT_ETCD_PREFIX): string {
  const hosts = endpoints.map((e) =>
    e
      .trim()
      .replace(/^https?:\/\//, '')
      .replace(/\/$/, ''),
  );
  const p = prefix.replace(/\/+$/, '');
  return `etcd://${hosts.join(',')}${p === '' ? '' : p.startsWith('/') ? p : `/${p}`}`;
}
