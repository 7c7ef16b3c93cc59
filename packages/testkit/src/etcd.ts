// A real single-member etcd (Debian etcd-server) on loopback ports chosen at run time, for HA tests.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { startProcess, type ManagedProcess } from './process.js';

export interface EtcdHandle extends AsyncDisposable {
  /** "http://127.0.0.1:PORT" */
  endpoint: string;
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

export async function startEtcd(): Promise<EtcdHandle> {
  const bin = etcdBinary();
  if (!bin) throw new Error('etcd not installed (apt-get install etcd-server)');
  const dir = mkdtempSync(join(tmpdir(), 'kvf-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
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
      ],
      env: { ETCD_UNSUPPORTED_ARCH: process.arch === 'arm64' ? 'arm64' : '' },
      healthUrl: `${endpoint}/health`,
    });
  const handle: EtcdHandle = {
    endpoint,
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
    },
  };
  return handle;
}
