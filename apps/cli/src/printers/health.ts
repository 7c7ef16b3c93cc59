// Printer for `health`: {"ok","addr","epoch","rttMs",...,"http"?:{"addr","status","ok","body"}}. Not ok → exit 1.
import type { GetStatsResponse } from '@kvfabric/proto';
import { EXIT, type Printer } from '../command.js';
import { count, duration, jsonInt, renderPairs } from './format.js';
import { leaderJson } from './stats.js';

export interface HttpHealth {
  addr: string;
  status: number;
  ok: boolean;
  body: unknown;
  rttMs: number;
}

export interface HealthResult {
  addr: string;
  stats: GetStatsResponse;
  rttMs: number;
  http: HttpHealth | undefined;
}

const ok = (r: HealthResult) => r.http === undefined || r.http.ok;
const ms = (v: number) => Math.round(v * 1000) / 1000;

export const healthPrinter: Printer<HealthResult> = {
  json: (r) => ({
    ok: ok(r),
    addr: r.addr,
    epoch: r.stats.epoch.toString(),
    rttMs: ms(r.rttMs),
    uptimeSecs: r.stats.startedAtMs === 0n ? null : Math.max(0, Math.floor((Date.now() - Number(r.stats.startedAtMs)) / 1000)),
    liveNodes: jsonInt(r.stats.liveNodes),
    staleNodes: jsonInt(r.stats.staleNodes),
    blocks: jsonInt(r.stats.blocks),
    leader: leaderJson(r.stats.leader),
    ...(r.http ? { http: { addr: r.http.addr, status: r.http.status, ok: r.http.ok, rttMs: ms(r.http.rttMs), body: r.http.body } } : {}),
  }),
  table: (r) =>
    renderPairs([
      ['status', ok(r) ? 'ok' : 'unhealthy'],
      ['metaserver', `${r.addr} (grpc round trip ${ms(r.rttMs)} ms)`],
      ['epoch', r.stats.epoch.toString()],
      ['uptime', r.stats.startedAtMs === 0n ? '-' : duration(Date.now() - Number(r.stats.startedAtMs))],
      ['nodes', `${count(r.stats.liveNodes)} live, ${count(r.stats.staleNodes)} stale`],
      ['blocks', count(r.stats.blocks)],
      ...(r.http ? [['http /health', `${r.http.addr}: ${r.http.status}${r.http.ok ? ' ok' : ''} (${ms(r.http.rttMs)} ms)`] as [string, string]] : []),
    ]),
  exitCode: (r) => (ok(r) ? EXIT.OK : EXIT.SERVER_ERROR),
};
