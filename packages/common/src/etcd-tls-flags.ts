// The flags that turn on TLS to etcd, spelled as etcdctl spells them (--cacert/--cert/--key become --etcd-ca,
// --etcd-cert, --etcd-key), and the rules for etcd endpoints: https:// needs the CA, http:// contradicts it, and a
// plaintext endpoint off loopback needs --insecure, the same rule the daemons' own listeners follow. Pure: reading
// the files is @kvfabric/common/rpc's readEtcdTls.
import { echo } from './echo.js';
import { KvError } from './errors.js';
import type { FlagSpecs } from './config.js';
import { checkPlaintextHop, isLoopbackHost } from './tls-flags.js';
import { parseHostPort } from './validate.js';

export const ETCD_TLS_FLAGS = {
  'etcd-ca': {
    kind: 'string',
    description:
      "CA certificates (PEM) that sign etcd's server certificate; turns on TLS to etcd (etcdctl --cacert), endpoints then https://",
  },
  'etcd-cert': {
    kind: 'string',
    description: 'client certificate (PEM) presented to etcd when it runs with --client-cert-auth (etcdctl --cert)',
  },
  'etcd-key': { kind: 'string', description: 'private key (PEM) of --etcd-cert (etcdctl --key)' },
} as const satisfies FlagSpecs;

export interface EtcdTlsPaths {
  etcdCa?: string | undefined;
  etcdCert?: string | undefined;
  etcdKey?: string | undefined;
}

/**
 * True when --etcd-ca is given (TLS to etcd). The client certificate is optional (etcd without --client-cert-auth
 * needs none), but comes with its key, and neither comes without the CA: CONFIG_INVALID naming the missing flags.
 */
export function etcdTlsRequested(paths: EtcdTlsPaths): boolean {
  const given = (v: string | undefined) => v !== undefined && v !== '';
  const [ca, cert, key] = [given(paths.etcdCa), given(paths.etcdCert), given(paths.etcdKey)];
  if (cert !== key)
    throw new KvError(
      'CONFIG_INVALID',
      `${cert ? 'etcd-key' : 'etcd-cert'}: required with ${cert ? 'etcd-cert' : 'etcd-key'}`,
    );
  if (cert && !ca)
    throw new KvError(
      'CONFIG_INVALID',
      "etcd-ca: required with etcd-cert and etcd-key (the CA that signs etcd's server certificate)",
    );
  return ca;
}

export interface EtcdEndpoint {
  /** The scheme as written; undefined for a bare host:port (TLS then follows --etcd-ca). */
  scheme: 'http' | 'https' | undefined;
  /** "host:port" */
  hostPort: string;
}

/** "https://h:p", "http://h:p" or "h:p" (a trailing / allowed); CONFIG_INVALID naming `field` otherwise. */
export function parseEtcdEndpoint(endpoint: string, field: string): EtcdEndpoint {
  const m = /^(?:(https?):\/\/)?([^/\s]+?)\/?$/i.exec(endpoint.trim());
  const hostPort = m?.[2];
  let ok = hostPort !== undefined;
  try {
    if (ok && parseHostPort(hostPort!, field).port === 0) ok = false;
  } catch {
    ok = false;
  }
  if (!ok)
    throw new KvError('CONFIG_INVALID', `${field}: expected host:port or https://host:port, got ${echo(endpoint)}`);
  return { scheme: m![1]?.toLowerCase() as EtcdEndpoint['scheme'], hostPort: hostPort! };
}

/**
 * The host:port of an endpoint whose scheme agrees with the TLS choice (`tls`: --etcd-ca given): https:// needs the
 * CA, http:// contradicts it, a bare host:port follows it. CONFIG_INVALID naming `field` and the endpoint otherwise.
 */
export function etcdEndpointHost(endpoint: string, tls: boolean, field: string): string {
  const { scheme, hostPort } = parseEtcdEndpoint(endpoint, field);
  if (scheme === 'https' && !tls)
    throw new KvError(
      'CONFIG_INVALID',
      `${field}: ${echo(endpoint)} is https:// but --etcd-ca is not given (the CA that signs etcd's server certificate)`,
    );
  if (scheme === 'http' && tls)
    throw new KvError(
      'CONFIG_INVALID',
      `${field}: ${echo(endpoint)} is http:// but --etcd-ca turns on TLS to etcd; write https://${hostPort} or ${hostPort}`,
    );
  return hostPort;
}

/**
 * Checks every endpoint's scheme (etcdEndpointHost) and, without TLS, the loopback rule: plaintext to etcd off
 * loopback needs --insecure. Throws CONFIG_INVALID naming `field` and the endpoint; returns the plaintext endpoints
 * off loopback that --insecure let through, for the warning at start.
 */
export function checkEtcdEndpoints(
  endpoints: readonly string[],
  tls: boolean,
  insecure: boolean,
  field: string,
): string[] {
  const letThrough: string[] = [];
  for (const endpoint of endpoints) {
    const hostPort = etcdEndpointHost(endpoint, tls, field);
    if (tls) continue;
    checkPlaintextHop(hostPort, field, insecure, {
      remedy: 'give --etcd-ca (and --etcd-cert, --etcd-key when etcd checks client certificates) for TLS to etcd',
      anyway: 'talk plaintext to etcd across the network anyway',
    });
    if (!isLoopbackHost(parseHostPort(hostPort, field).host)) letThrough.push(hostPort);
  }
  return letThrough;
}
