// kvfabric health: a GetStats round trip (epoch, latency) and, with --http-addr, the metaserver's GET /health.
// With an etcd:// address it first reads the leader key through the leader locator: whether etcd answers, which
// replica leads and since when; then asks that leader. An unreachable etcd or no elected leader is reported (exit 3)
// with what is known, instead of only an error line.
import { KvError, parseHostPort, toKvError } from '@kvfabric/common';
import type { MetaserverClient } from '@kvfabric/client/metaserver';
import { defineCommand } from '../command.js';
import { healthPrinter, type EtcdHealth, type HealthResult, type HttpHealth } from '../printers/health.js';

export const health = defineCommand({
  name: 'health',
  summary:
    'Check the metaserver: a gRPC round trip (epoch, latency), with etcd:// the etcd and leader status, and with --http-addr its GET /health.',
  flags: {
    'http-addr': { kind: 'string', description: "the metaserver's HTTP address (host:port) to GET /health from" },
  },
  needsServer: true,
  parse: (config) => {
    if (config.httpAddr !== undefined) parseHostPort(config.httpAddr, '--http-addr');
    return { httpAddr: config.httpAddr };
  },
  run: async (args, { client, global }): Promise<HealthResult> => {
    const etcd = await etcdHealth(client!);
    if (etcd && !etcd.leader) {
      const why = etcd.reachable
        ? `no metaserver leader elected (${etcd.key} is empty)`
        : `etcd unreachable: ${etcd.error}`;
      return { addr: client!.target, etcd, error: new KvError('METASERVER_UNAVAILABLE', why) };
    }
    const started = performance.now();
    let stats;
    try {
      stats = await client!.getStats();
    } catch (err) {
      if (!etcd) throw err;
      return { addr: client!.target, etcd, error: toKvError(err) };
    }
    const rttMs = performance.now() - started;
    const http = args.httpAddr === undefined ? undefined : await getHealth(args.httpAddr, global.timeoutSecs * 1000);
    return { addr: client!.target, stats, rttMs, http, etcd };
  },
  printer: healthPrinter,
});

/** HA only: one read of the leader key (etcd reachable? who leads?). */
async function etcdHealth(client: MetaserverClient): Promise<EtcdHealth | undefined> {
  const locator = await client.leaderLocator();
  if (!locator) return undefined;
  const started = performance.now();
  const leader = await locator.refresh();
  return {
    endpoints: locator.target.endpoints,
    key: locator.key,
    reachable: locator.lastError === undefined,
    error: locator.lastError?.message.replace(/\s+/g, ' '),
    rttMs: performance.now() - started,
    leader,
  };
}

async function getHealth(addr: string, timeoutMs: number): Promise<HttpHealth> {
  const url = `http://${addr}/health`;
  const started = performance.now();
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new KvError('METASERVER_UNAVAILABLE', `cannot connect to metaserver HTTP at ${addr}: ${why}`, { cause: err });
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text body, kept as is
  }
  return { addr, status: res.status, ok: res.ok, body, rttMs: performance.now() - started };
}
