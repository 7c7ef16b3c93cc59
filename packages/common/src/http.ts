// GET /health and GET /metrics on --http-addr, for every process, and optional JSON routes (GET /debug/...).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toKvError } from './errors.js';
import type { Metrics } from './metrics.js';
import type { Logger } from './logger.js';
import { parseHostPort } from './validate.js';

export interface HealthReport {
  ok: boolean;
  [key: string]: unknown;
}

export interface HttpEndpoint {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export async function startHttp(opts: {
  addr: string;
  metrics: Metrics;
  health: () => HealthReport | Promise<HealthReport>;
  logger: Logger;
  /** More GET routes answering JSON (path → handler of the query parameters); a thrown KvError answers 400. */
  routes?: Record<string, (params: URLSearchParams) => unknown>;
}): Promise<HttpEndpoint> {
  const { host, port } = parseHostPort(opts.addr, 'http-addr');
  const server = createServer((req, res) => {
    const [path, query = ''] = (req.url ?? '/').split('?', 2) as [string, string?];
    const reply = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return reply(405, 'text/plain', 'method not allowed\n');
    if (path === '/health') {
      Promise.resolve(opts.health()).then(
        (report) => reply(report.ok ? 200 : 503, 'application/json', JSON.stringify(report) + '\n'),
        (err: Error) => reply(503, 'application/json', JSON.stringify({ ok: false, error: err.message }) + '\n'),
      );
      return;
    }
    if (path === '/metrics') {
      opts.metrics.text().then(
        (text) => reply(200, 'text/plain; version=0.0.4; charset=utf-8', text),
        (err: Error) => {
          opts.logger.error({ err }, 'metrics collection failed');
          reply(500, 'text/plain', 'metrics collection failed\n');
        },
      );
      return;
    }
    const route = opts.routes && Object.hasOwn(opts.routes, path) ? opts.routes[path] : undefined;
    if (route) {
      let body: unknown;
      try {
        body = route(new URLSearchParams(query));
      } catch (err) {
        return reply(400, 'application/json', JSON.stringify({ error: toKvError(err).message }) + '\n');
      }
      return reply(200, 'application/json', JSON.stringify(body) + '\n');
    }
    reply(404, 'text/plain', 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    server,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
