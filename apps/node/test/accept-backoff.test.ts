// accept() out of file descriptors (issue 12): a flood of connections to the tcp data port of a node whose
// descriptor limit was lowered (prlimit) makes accept4 fail with EMFILE. The native server must back off instead
// of spinning a thread at 100 % CPU, count it, and say so on /health (503, degraded, with the reason), then
// recover by itself once the connections go. /health and /metrics are read over one keep-alive connection opened
// before the flood: the node has no descriptor left for a new one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startNode } from '@kvfabric/testkit';
import { RawReader } from './raw-reader.js';
import { until } from './pull-helpers.js';

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function fetchKeepAlive(httpAddr: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(`http://${httpAddr}${path}`, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

async function metricOf(httpAddr: string, name: string): Promise<number> {
  const { body } = await fetchKeepAlive(httpAddr, '/metrics');
  const line = body.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  if (!line) throw new Error(`metric ${name} not exported`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** CPU seconds the process used so far (utime + stime from /proc, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

test('accept4 failing with EMFILE backs off, is counted, degrades /health with the reason, and recovers', async () => {
  await using node = await startNode({ poolSize: '16mib' });
  const reader = await RawReader.handshake(node, 'probe');
  const flood: Socket[] = [];
  try {
    assert.equal((await fetchKeepAlive(node.httpAddr, '/health')).status, 200);
    const pid = node.proc.pid;
    const limit = readdirSync(`/proc/${pid}/fd`).length + 16;
    const lowered = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`], { encoding: 'utf8' });
    assert.equal(lowered.status, 0, lowered.stderr);

    for (let i = 0; i < 64; i++) {
      const s = connect({ host: reader.material.host, port: reader.material.port });
      s.on('error', () => {});
      flood.push(s);
    }
    await until(
      'accept failing',
      async () => (await metricOf(node.httpAddr, 'kvfabric_transport_accept_failing')) === 1,
    );
    const health = await fetchKeepAlive(node.httpAddr, '/health');
    assert.equal(health.status, 503);
    const report = JSON.parse(health.body) as { ok: boolean; status: string; reasons: string[] };
    assert.deepEqual(
      { ok: report.ok, status: report.status, reasons: report.reasons },
      {
        ok: false,
        status: 'degraded',
        reasons: ['transport: accepting peer connections fails (EMFILE); retrying with back-off, peers cannot connect'],
      },
    );

    // Backing off, not spinning: at most 20 tries a second (50 ms .. 1 s apart) and far from a busy core. Load on
    // the machine can only lower both numbers.
    const [f0, c0, t0] = [
      await metricOf(node.httpAddr, 'kvfabric_transport_accept_failures_total'),
      cpuSeconds(pid),
      Date.now(),
    ];
    await sleep(2000);
    const [f1, c1, t1] = [
      await metricOf(node.httpAddr, 'kvfabric_transport_accept_failures_total'),
      cpuSeconds(pid),
      Date.now(),
    ];
    const secs = (t1 - t0) / 1000;
    assert.ok(f0 >= 1 && f1 - f0 <= secs * 20 + 5, `${f1 - f0} accept failures in ${secs} s`);
    assert.ok(c1 - c0 < secs * 0.2, `the node used ${c1 - c0} s of CPU in ${secs} s`);

    // The connections go: accepting works again and the node is healthy.
    for (const s of flood) s.destroy();
    await until('healthy again', async () => (await fetchKeepAlive(node.httpAddr, '/health')).status === 200);
    assert.equal(await metricOf(node.httpAddr, 'kvfabric_transport_accept_failing'), 0);
    const conn = await reader.connect();
    conn.close();
  } finally {
    for (const s of flood) s.destroy();
    reader.close();
    agent.destroy();
  }
});
