// TLS to etcd, with real processes: an etcd that serves clients only over TLS and requires client certificates from
// its own CA (not the kvfabric CA), a kvfabric-metaserver in HA mode and a kvfabric-node, both on mutual TLS.
//   the metaserver elects itself through that etcd; the node follows etcd://... with --etcd-* and registers; the CLI
//   lists it the same way, and without --etcd-* cannot reach etcd at all (exit 3);
//   a wrong --etcd-ca, or no client certificate, fails the start (exit 2) naming the flag and the endpoint, bounded,
//   and leaves etcd untouched;
//   plaintext etcd off loopback is refused without --insecure (naming the flag) and warned about with it.
// The etcd cases are skipped with the reason when etcd is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkEtcdTls, connectEtcd, decodeLeaderRecord, leaderKey } from '@kvfabric/common/etcd';
import {
  BIN,
  etcdSkipReason,
  etcdTlsArgs,
  freePort,
  runCli,
  startEtcd,
  startMetaserver,
  startNode,
  testCa,
  tlsArgs,
  type CertPaths,
  type EtcdHandle,
} from '@kvfabric/testkit';

const skip = etcdSkipReason();
const PREFIX = '/etcd-tls';
/** Generous: the machine may be loaded; every wait below ends as soon as its condition holds. */
const WAIT_MS = 30_000;

/** etcd3 credentials from an etcd-role certificate, as readEtcdTls would read them. */
function credentials(paths: CertPaths) {
  return {
    rootCertificate: readFileSync(paths.tlsCa),
    certChain: readFileSync(paths.tlsCert),
    privateKey: readFileSync(paths.tlsKey),
  };
}

/** The leader key's value as etcd holds it (read with an etcd client certificate), or undefined. */
async function leaderValue(etcd: EtcdHandle): Promise<string | undefined> {
  const admin = connectEtcd([etcd.endpoint], { tls: credentials(await etcd.tls!.ca.issue('etcd', 'admin')) });
  try {
    return (await admin.get(leaderKey(PREFIX)).string()) ?? undefined;
  } finally {
    admin.close();
  }
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${WAIT_MS} ms`);
    await sleep(100);
  }
}

/** Runs a kvfabric daemon expected to refuse its configuration: its exit and stderr (SIGKILL if it runs on). */
function refusedStart(
  bin: string,
  args: string[],
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), WAIT_MS);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

test('HA through an etcd that requires TLS client certificates: lead, find, register, list', { skip }, async () => {
  await using etcd = await startEtcd({ tls: true });
  const etcdCa = etcd.tls!.ca;
  await using ms = await startMetaserver({
    tls: true,
    args: [
      '--etcd-endpoints',
      etcd.endpoint,
      '--etcd-prefix',
      PREFIX,
      '--etcd-lease-ttl-secs',
      '2',
      ...etcdTlsArgs(await etcdCa.issue('etcd', 'metaserver')),
    ],
  });
  const health = await waitFor('the metaserver leads', async () => {
    const body = (await (await fetch(`http://${ms.httpAddr}/health`)).json()) as {
      role: string;
      ha: { etcd: { tls: boolean; reachable: boolean } };
    };
    return body.role === 'leader' ? body : undefined;
  });
  assert.deepEqual([health.ha.etcd.tls, health.ha.etcd.reachable], [true, true]);
  const record = decodeLeaderRecord((await leaderValue(etcd))!);
  assert.equal(record.addr, ms.addr);

  const addr = `etcd://${etcd.hostPort}${PREFIX}`;
  await using node = await startNode({
    tls: true,
    metaserverAddr: addr,
    args: etcdTlsArgs(await etcdCa.issue('etcd', 'node')),
  });
  const cli = [
    'nodes',
    '--metaserver-addr',
    addr,
    '--output',
    'json',
    '--timeout-secs',
    '5',
    ...tlsArgs(ms.tls!.client),
    ...etcdTlsArgs(await etcdCa.issue('etcd', 'ops')),
  ];
  const listed = await waitFor('the node registers', async () => {
    const res = await runCli(cli);
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { leader: { addr: string }; nodes: { addr: string; nodeId: string }[] };
    return out.nodes.length > 0 ? out : undefined;
  });
  assert.equal(listed.leader.addr, ms.addr);
  assert.deepEqual(
    listed.nodes.map((n) => [n.addr, n.nodeId.split('/')[0]]),
    [[node.addr, node.tls!.name]],
  );

  // the same etcd without --etcd-*: plaintext gRPC to a TLS-only etcd finds no leader (cannot connect: exit 3)
  const plain = await runCli(['nodes', '--metaserver-addr', addr, '--timeout-secs', '2', ...tlsArgs(ms.tls!.client)]);
  assert.equal(plain.code, 3, plain.stderr);
  assert.match(
    plain.stderr,
    new RegExp(`cannot find the metaserver leader: etcd ${etcd.hostPort} key ${PREFIX}/leader`),
  );
});

test(
  'a certificate etcd does not trust, or refuses, fails the start naming the flag and endpoint',
  { skip },
  async () => {
    await using etcd = await startEtcd({ tls: true });
    const client = await etcd.tls!.ca.issue('etcd', 'metaserver');
    const kvfabricCa = (await testCa().issue('metaserver', 'main')).tlsCa;
    const ha = ['--etcd-endpoints', etcd.endpoint, '--etcd-prefix', PREFIX];
    const cases: { what: string; bin: string; args: string[]; message: RegExp }[] = [
      {
        what: "metaserver with the kvfabric CA as etcd's",
        bin: BIN.metaserver,
        args: [...ha, '--etcd-ca', kvfabricCa, '--etcd-cert', client.tlsCert, '--etcd-key', client.tlsKey],
        message: new RegExp(
          `^kvfabric-metaserver: etcd-ca: etcd's certificate at ${etcd.hostPort} is not signed by the CA in --etcd-ca: `,
        ),
      },
      {
        what: 'metaserver without a client certificate',
        bin: BIN.metaserver,
        args: [...ha, '--etcd-ca', client.tlsCa],
        message: new RegExp(
          `^kvfabric-metaserver: etcd-cert: etcd at ${etcd.hostPort} refused this process's client certificate`,
        ),
      },
      {
        what: "node with the kvfabric CA as etcd's",
        bin: BIN.node,
        args: [
          '--metaserver-addr',
          `etcd://${etcd.hostPort}${PREFIX}`,
          '--etcd-ca',
          kvfabricCa,
          '--engine-socket',
          `/tmp/kvf-etcd-tls-${process.pid}.sock`,
          '--pool-size',
          '16mib',
        ],
        message: new RegExp(
          `^kvfabric-node: etcd-ca: etcd's certificate at ${etcd.hostPort} is not signed by the CA in --etcd-ca: `,
        ),
      },
    ];
    for (const c of cases) {
      const run = await refusedStart(c.bin, ['--addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', ...c.args]);
      assert.deepEqual([run.code, run.signal], [2, null], `${c.what}: ${run.stderr}`);
      assert.match(run.stderr, c.message, c.what);
    }
    assert.equal(await leaderValue(etcd), undefined, 'nothing was written to etcd');
  },
);

test('the start check tells a certificate problem from an etcd that is not there', { skip }, async () => {
  await using tlsEtcd = await startEtcd({ tls: true });
  await using plainEtcd = await startEtcd();
  const tls = credentials(await tlsEtcd.tls!.ca.issue('etcd', 'metaserver'));
  // etcd's certificate names localhost and 127.0.0.1: both spellings pass
  assert.deepEqual(await checkEtcdTls([tlsEtcd.endpoint, `localhost:${tlsEtcd.hostPort.split(':')[1]}`], tls), []);
  await assert.rejects(
    checkEtcdTls([tlsEtcd.endpoint, plainEtcd.hostPort], tls, { field: 'metaserver-addr' }),
    new RegExp(
      `^KvError: metaserver-addr: etcd at ${plainEtcd.hostPort} closed the connection on the TLS hello \\(an http:// endpoint\\?\\): `,
    ),
  );
  // nobody listening: reported back (the election keeps trying), not a configuration error
  const gone = `127.0.0.1:${await freePort()}`;
  assert.deepEqual(await checkEtcdTls([tlsEtcd.endpoint, gone], tls), [
    `${gone}: connect ECONNREFUSED ${gone} (ECONNREFUSED)`,
  ]);
});

test('plaintext etcd off loopback: refused without --insecure, warned about with it', async () => {
  const offLoopback = '192.0.2.1:2379'; // TEST-NET-1: never routed
  const ms = await refusedStart(BIN.metaserver, ['--etcd-endpoints', offLoopback]);
  assert.deepEqual([ms.code, ms.signal], [2, null], ms.stderr);
  assert.match(
    ms.stderr,
    /^kvfabric-metaserver: etcd-endpoints: 192\.0\.2\.1:2379 is not a loopback address; give --etcd-ca .*, or --insecure to talk plaintext to etcd across the network anyway\n$/,
  );
  const node = await refusedStart(BIN.node, ['--metaserver-addr', `etcd://${offLoopback}/kvf`]);
  assert.deepEqual([node.code, node.signal], [2, null], node.stderr);
  assert.match(
    node.stderr,
    /^kvfabric-node: metaserver-addr: 192\.0\.2\.1:2379 is not a loopback address; give --etcd-ca/,
  );

  await using insecure = await startMetaserver({ args: ['--etcd-endpoints', offLoopback, '--insecure'] });
  // logged at start-up; the health check that ends the start can come first, so the line may still be on its way
  const warning = await waitFor('the plaintext warning', async () =>
    insecure.proc.logLines().find((l) => l.level === 'warn' && String(l.msg).includes('plaintext to etcd')),
  );
  assert.deepEqual(warning.etcd, [offLoopback], insecure.proc.tail());
});
