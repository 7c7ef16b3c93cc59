// `kvfabric` against two real kvfabric-metaserver replicas on a real etcd (lease TTL 2 s), addressed as
// etcd://host:port/prefix: every command finds the leader; nodes/stats say which replica leads and since when;
// health reports etcd and the leader; after the leader is killed the same command reaches the new one; with etcd
// stopped health says so (exit 3). Skipped with the reason when etcd is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaserverClient } from '@kvfabric/client';
import { etcdSkipReason, runCli, startEtcd, startMetaserver, type MetaserverHandle } from '@kvfabric/testkit';

const skip = etcdSkipReason();
const TTL_SECS = 2;
const h = (byte: number) => Buffer.alloc(32, byte);
const hex = (byte: number) => h(byte).toString('hex');

async function json(args: string[]): Promise<any> {
  const res = await runCli([...args, '--output', 'json']);
  assert.equal(res.code, 0, `kvfabric ${args.join(' ')} exited ${res.code}: ${res.stderr}`);
  assert.equal(res.stderr, '');
  return JSON.parse(res.stdout);
}

test('etcd:// for every command: leader, since when, etcd status, failover, etcd down', { skip }, async () => {
  await using etcd = await startEtcd();
  const endpoint = etcd.endpoint.replace('http://', '');
  const addr = `etcd://${endpoint}/cli-ha`;
  const replicas: { id: string; ms: MetaserverHandle }[] = [];
  await using _replicas = {
    async [Symbol.asyncDispose]() {
      for (const r of replicas) await r.ms[Symbol.asyncDispose]();
    },
  };
  for (const id of ['ma', 'mb']) {
    const args = [
      '--etcd-endpoints',
      etcd.endpoint,
      '--etcd-prefix',
      '/cli-ha',
      '--etcd-lease-ttl-secs',
      String(TTL_SECS),
      '--replica-id',
      id,
    ];
    replicas.push({ id, ms: await startMetaserver({ args, logLevel: 'warn' }) });
  }
  const client = new MetaserverClient(addr, { deadlineMs: 10_000 });
  try {
    const hb = await client.heartbeat({ nodeId: 'node-a', addr: '127.0.0.1:7301' });
    await client.insertBlocks('node-a', 'ns', [h(1), h(2), h(3)]);
    const leader = replicas.find((r) => r.ms.addr === client.target)!;
    assert.ok(leader, `the client dials a replica (${client.target})`);
    const follower = replicas.find((r) => r !== leader)!;

    // nodes: JSON and table name the leading replica and since when
    const nodes = await json(['nodes', '--metaserver-addr', addr]);
    assert.equal(nodes.epoch, hb.epoch.toString());
    assert.deepEqual(
      { ...nodes.leader, since: undefined, forSecs: undefined },
      {
        addr: leader.ms.addr,
        epoch: hb.epoch.toString(),
        ha: true,
        replicaId: leader.id,
        since: undefined,
        forSecs: undefined,
      },
    );
    assert.ok(
      Date.parse(nodes.leader.since) <= Date.now() && Date.now() - Date.parse(nodes.leader.since) < 60_000,
      nodes.leader.since,
    );
    assert.ok(nodes.leader.forSecs >= 0 && nodes.leader.forSecs < 60);
    assert.deepEqual(
      nodes.nodes.map((n: any) => [n.addr, n.state, n.blocks]),
      [['127.0.0.1:7301', 'live', 3]],
    );
    const table = await runCli(['nodes', '--metaserver-addr', addr]);
    assert.equal(table.code, 0, table.stderr);
    const ip = leader.ms.addr.replace(/\./g, '\\.');
    assert.match(
      table.stdout.split('\n')[0]!,
      new RegExp(
        `^leader ${leader.id} at ${ip} \\(ha\\), epoch ${hb.epoch}, since \\d{4}-\\d\\d-\\d\\dT\\S+Z \\([^)]+ ago\\)$`,
      ),
    );
    assert.match(table.stdout, /^127\.0\.0\.1:7301\s+live\s+3\s/m);

    // stats: the same, plus the cluster-wide count of leader changes
    const stats = await json(['stats', '--metaserver-addr', addr]);
    assert.equal(stats.leader.replicaId, leader.id);
    assert.equal(stats.leader.since, nodes.leader.since);
    assert.equal(stats.leaderChanges, 0);
    assert.equal(stats.blocks, 3);
    const statsTable = await runCli(['stats', '--metaserver-addr', addr]);
    assert.match(
      statsTable.stdout,
      new RegExp(
        `^leader\\s+${leader.id} at ${ip} \\(ha\\), epoch ${hb.epoch}, since \\S+ \\([^)]+ ago\\); 0 leader changes$`,
        'm',
      ),
    );

    // locate and namespaces through etcd
    const located = await json([
      'locate',
      '--metaserver-addr',
      addr,
      '--namespace',
      'ns',
      '--hashes',
      [1, 2, 3, 4].map(hex).join(','),
    ]);
    assert.deepEqual(
      located.nodes.map((n: any) => [n.addr, n.prefixLen]),
      [['127.0.0.1:7301', 3]],
    );
    assert.deepEqual((await json(['namespaces', '--metaserver-addr', addr])).namespaces, [
      { name: 'ns', blocks: 3, owners: 3 },
    ]);

    // health: etcd reachable, the leader key, the leader's answer and its /health
    const health = await json(['health', '--metaserver-addr', addr, '--http-addr', leader.ms.httpAddr]);
    assert.equal(health.ok, true);
    assert.equal(health.addr, leader.ms.addr);
    assert.deepEqual(
      { ...health.etcd, rttMs: undefined },
      {
        endpoints: [endpoint],
        key: '/cli-ha/leader',
        reachable: true,
        rttMs: undefined,
        leader: { addr: leader.ms.addr, epoch: hb.epoch.toString(), since: nodes.leader.since, replicaId: leader.id },
      },
    );
    assert.equal(health.leader.replicaId, leader.id);
    assert.equal(health.http.body.role, 'leader');
    const healthTable = await runCli(['health', '--metaserver-addr', addr]);
    assert.equal(healthTable.code, 0, healthTable.stderr);
    assert.match(healthTable.stdout, /^status\s+ok$/m);
    assert.match(healthTable.stdout, new RegExp(`^etcd\\s+${endpoint} \\(reachable, [\\d.]+ ms\\)$`, 'm'));
    assert.match(
      healthTable.stdout,
      new RegExp(`^etcd leader\\s+${leader.id} at ${ip}, epoch ${hb.epoch}, since `, 'm'),
    );

    // the leader dies: the same command (deadline longer than the lease) reaches the new leader by itself
    leader.ms.proc.kill('SIGKILL');
    const after = await json(['stats', '--metaserver-addr', addr, '--timeout-secs', String(TTL_SECS + 4)]);
    assert.equal(after.leader.replicaId, follower.id);
    assert.equal(after.leaderChanges, 1);
    assert.ok(BigInt(after.epoch) > hb.epoch);
    assert.equal(after.blocks, 0, 'a fresh index until the nodes re-advertise');

    // etcd down: health says etcd is unreachable, exit 3; other commands fail with exit 3 and one line
    await etcd.stop();
    const down = await runCli(['health', '--metaserver-addr', addr, '--output', 'json', '--timeout-secs', '1']);
    assert.equal(down.code, 3, down.stderr);
    const d = JSON.parse(down.stdout);
    assert.equal(d.ok, false);
    assert.equal(d.etcd.reachable, false);
    assert.equal(d.etcd.leader, null);
    assert.equal(d.error.code, 'METASERVER_UNAVAILABLE');
    assert.match(d.error.message, /^etcd unreachable: /);
    const downTable = await runCli(['health', '--metaserver-addr', addr, '--timeout-secs', '1']);
    assert.equal(downTable.code, 3);
    assert.match(downTable.stdout, /^status\s+unhealthy$/m);
    assert.match(downTable.stdout, new RegExp(`^etcd\\s+${endpoint} \\(unreachable: `, 'm'));
    const nodesDown = await runCli(['nodes', '--metaserver-addr', addr, '--timeout-secs', '1']);
    assert.equal(nodesDown.code, 3, nodesDown.stderr);
    assert.equal(nodesDown.stdout, '');
    assert.match(
      nodesDown.stderr,
      new RegExp(`^kvfabric nodes: cannot find the metaserver leader: etcd ${endpoint} key /cli-ha/leader: .+\\n$`),
    );
  } finally {
    client.close();
  }
});

test('etcd:// addresses are checked like any flag (exit 2) and an empty leader key is exit 3', { skip }, async () => {
  const bad = await runCli(['nodes', '--metaserver-addr', 'etcd://nohost/kvf']);
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /^kvfabric nodes: --metaserver-addr: expected etcd:\/\/host:port\[,host:port...\]\[\/prefix\]; bad endpoint "nohost"/,
  );
  await using etcd = await startEtcd();
  const endpoint = etcd.endpoint.replace('http://', '');
  // The deadline covers loading the etcd client and the first answer from etcd: generous, for a busy machine.
  const none = await runCli(['stats', '--metaserver-addr', `etcd://${endpoint}/nobody`, '--timeout-secs', '5']);
  assert.equal(none.code, 3, none.stderr);
  assert.equal(
    none.stderr,
    `kvfabric stats: no metaserver leader elected (etcd ${endpoint} key /nobody/leader is empty)\n`,
  );
  const health = await runCli(['health', '--metaserver-addr', `etcd://${endpoint}/nobody`, '--output', 'json']);
  assert.equal(health.code, 3);
  const out = JSON.parse(health.stdout);
  assert.deepEqual(
    { ok: out.ok, reachable: out.etcd.reachable, leader: out.etcd.leader, error: out.error },
    {
      ok: false,
      reachable: true,
      leader: null,
      error: { code: 'METASERVER_UNAVAILABLE', message: 'no metaserver leader elected (/nobody/leader is empty)' },
    },
  );
});
