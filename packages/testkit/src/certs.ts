// Certificates for tests and benches: one development CA per process (scripts/gen-certs.sh, openssl), made in a
// temporary directory on first use, and a certificate per identity on demand. Paths come in the shape the TLS flags
// and `readTls` take, so `readTls(await certs.issue('client', 'tests'))` gives a test's own client credentials.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** kvfabric identities, and etcd: a certificate without one, for etcd's server or a client of etcd. */
export type CertRole = 'metaserver' | 'node' | 'client' | 'etcd';

/** PEM file paths, named as the TLS flags' config fields. */
export interface CertPaths {
  tlsCert: string;
  tlsKey: string;
  tlsCa: string;
}

/** `--tls-cert C --tls-key K --tls-ca A`. */
export function tlsArgs(paths: CertPaths): string[] {
  return ['--tls-cert', paths.tlsCert, '--tls-key', paths.tlsKey, '--tls-ca', paths.tlsCa];
}

/** `--etcd-ca A --etcd-cert C --etcd-key K`: TLS to etcd with a client certificate (an etcd-role one). */
export function etcdTlsArgs(paths: CertPaths): string[] {
  return ['--etcd-ca', paths.tlsCa, '--etcd-cert', paths.tlsCert, '--etcd-key', paths.tlsKey];
}

function genCertsScript(): string {
  for (let d = dirname(fileURLToPath(import.meta.url)); dirname(d) !== d; d = dirname(d)) {
    const candidate = join(d, 'scripts', 'gen-certs.sh');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('testkit: scripts/gen-certs.sh not found above packages/testkit');
}

export class TestCa {
  readonly dir: string;
  private readonly issued = new Map<string, { spec: string; paths: Promise<CertPaths> }>();
  /** Issues one certificate at a time: gen-certs.sh creates the CA on first use and updates its serial file. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'kvf-certs-'));
  }

  /** A certificate for ROLE/NAME, limited to `namespaces` when given (made once, then reused). */
  issue(role: CertRole, name: string, namespaces: readonly string[] = []): Promise<CertPaths> {
    const spec = `${role}:${name}${namespaces.length > 0 ? `:${namespaces.join('+')}` : ''}`;
    const key = `${role}-${name}`;
    const made = this.issued.get(key);
    if (made && made.spec !== spec)
      throw new Error(`testkit: ${key} was issued as ${made.spec}, asked again as ${spec}`);
    let paths = made?.paths;
    if (!paths) {
      const run = this.queue.then(async () => {
        await promisify(execFile)('bash', [genCertsScript(), this.dir, spec]);
        return {
          tlsCert: join(this.dir, `${role}-${name}.pem`),
          tlsKey: join(this.dir, `${role}-${name}-key.pem`),
          tlsCa: join(this.dir, 'ca.pem'),
        };
      });
      this.queue = run.catch(() => undefined);
      paths = run;
      this.issued.set(key, { spec, paths });
    }
    return paths;
  }

  /** Removes the directory (certificates issued so far stop working for processes started later). */
  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let shared: TestCa | undefined;

/** The process's CA, removed when the process exits. */
export function testCa(): TestCa {
  if (!shared) {
    const ca = new TestCa();
    shared = ca;
    process.once('exit', () => ca.dispose());
  }
  return shared;
}
