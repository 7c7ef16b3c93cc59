// A real single-member etcd (Debian etcd-server) on loopback ports chosen at run time, for HA tests. With `tls` it
// serves clients only over TLS and requires a client certificate (--client-cert-auth), both from a CA of its own,
// not the kvfabric test CA, as a production etcd would. Readiness is read from its plaintext metrics listener.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCa, type CertPaths } from './certs.js';
import { freePort } from './ports.js';
import { startProcess, type ManagedProcess } from './process.js';

export interface EtcdHandle extends AsyncDisposable {
  /** "http://127.0.0.1:PORT", or with `tls` "https://127.0.0.1:PORT" */
  endpoint: string;
  /** "127.0.0.1:PORT", as etcd:// addresses name it */
  hostPort: string;
  /** With `tls`: etcd's own CA, which also issues the client certificates etcd accepts (`ca.issue('etcd', NAME)`). */
  tls?: { ca: TestCa; server: CertPaths };
  proc: ManagedProcess;
  /** Stops etcd, keeping its data; `start()` brings the same member back on the same ports. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** The etcd binary, or undefined when it is not installed (tests skip with the reason). */
export function etcdBinary(): string | undefined {
  for (const candidate of [process.env.KVFABRIC_ETCD_BIN, 'etcd'].filter(Boolean) as string[]) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** Reason to skip etcd tests, or undefined. With KVFABRIC_REQUIRE_ETCD=1 (CI) a missing etcd is an error. */
export function etcdSkipReason(): string | undefined {
  if (etcdBinary()) return undefined;
  if (process.env.KVFABRIC_REQUIRE_ETCD === '1')
    throw new Error('etcd is required (KVFABRIC_REQUIRE_ETCD=1) but not installed: apt-get install etcd-server');
  return 'etcd not installed (apt-get install etcd-server)';
}

export async function startEtcd(opts: { tls?: boolean } = {}): Promise<EtcdHandle> {
  const bin = etcdBinary();
  if (!bin) throw new Error('etcd not installed (apt-get install etcd-server)');
  const dir = mkdtempSync(join(tmpdir(), 'kvf-etcd-'));
  const hostPort = `127.0.0.1:${await freePort()}`;
  const peer = `http://127.0.0.1:${await freePort()}`;
  const metrics = `http://127.0.0.1:${await freePort()}`;
  const endpoint = `${opts.tls ? 'https' : 'http'}://${hostPort}`;
  const ca = opts.tls ? new TestCa() : undefined;
  const server = await ca?.issue('etcd', 'server');
  const tlsArgs = server
    ? [
        '--cert-file',
        server.tlsCert,
        '--key-file',
        server.tlsKey,
        '--trusted-ca-file',
        server.tlsCa,
        '--client-cert-auth',
      ]
    : [];
  const launch = () =>
    startProcess({
      name: `etcd ${endpoint}`,
      command: bin,
      args: [
        '--name',
        'kvf-test',
        '--data-dir',
        join(dir, 'data'),
        '--listen-client-urls',
        endpoint,
        '--advertise-client-urls',
        endpoint,
        '--listen-metrics-urls',
        metrics,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `kvf-test=${peer}`,
        '--initial-cluster-state',
        'new',
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
        '--log-level',
        'warn',
        ...tlsArgs,
      ],
      env: { ETCD_UNSUPPORTED_ARCH: process.arch === 'arm64' ? 'arm64' : '' },
      healthUrl: `${metrics}/health`,
    });
  const handle: EtcdHandle = {
    endpoint,
    hostPort,
    ...(ca && server ? { tls: { ca, server } } : {}),
    proc: await launch(),
    async stop() {
      await handle.proc.stop();
    },
    async start() {
      if (handle.proc.running) return;
      handle.proc = await launch();
    },
    async [Symbol.asyncDispose]() {
      await handle.proc[Symbol.asyncDispose]();
      rmSync(dir, { recursive: true, force: true });
      ca?.dispose();
    },
  };
  return handle;
}
