// kvfabric health: a GetStats round trip (epoch, latency) and, with --http-addr, the metaserver's GET /health.
import { KvError, parseHostPort } from '@kvfabric/common';
import { defineCommand } from '../command.js';
import { healthPrinter, type HealthResult, type HttpHealth } from '../printers/health.js';

export const health = defineCommand({
  name: 'health',
  summary: "Check the metaserver: a gRPC round trip (epoch, latency) and, with --http-addr, its GET /health.",
  flags: {
    'http-addr': { kind: 'string', description: "the metaserver's HTTP address (host:port) to GET /health from" },
  },
  needsServer: true,
  parse: (config) => {
    if (config.httpAddr !== undefined) parseHostPort(config.httpAddr, '--http-addr');
    return { httpAddr: config.httpAddr };
  },
  run: async (args, { client, global }): Promise<HealthResult> => {
    const started = performance.now();
    const stats = await client!.getStats();
    const rttMs = performance.now() - started;
    const http = args.httpAddr === undefined ? undefined : await getHealth(args.httpAddr, global.timeoutSecs * 1000);
    return { addr: client!.target, stats, rttMs, http };
  },
  printer: healthPrinter,
});

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
