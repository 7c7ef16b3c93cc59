// Printer for `health`: {"ok","addr","epoch","rttMs",...,"leader","etcd"?:{...},"http"?:{...},"error"?:{...}}.
// Not ok → exit 1; no leader to ask (etcd unreachable, none elected, the leader not answering) → exit 3.
import type { GetStatsResponse } from '@kvfabric/proto/metaserver';
import type { LeaderRecord } from '@kvfabric/client/metaserver';
import type { KvError } from '@kvfabric/common';
import { EXIT, type Printer } from '../command.js';
import { ago, count, duration, isoTime, jsonInt, renderPairs } from './format.js';
import { leaderJson, leaderLine } from './stats.js';

export interface HttpHealth {
  addr: string;
  status: number;
  ok: boolean;
  body: unknown;
  rttMs: number;
}

/** What one read of the leader key said (HA mode only). */
export interface EtcdHealth {
  endpoints: string[];
  key: string;
  reachable: boolean;
  error: string | undefined;
  rttMs: number;
  leader: LeaderRecord | undefined;
}

export interface HealthResult {
  addr: string;
  stats?: GetStatsResponse;
  rttMs?: number;
  http?: HttpHealth;
  etcd?: EtcdHealth;
  /** HA: why no leader could be asked. */
  error?: KvError;
}

const CANNOT_CONNECT = new Set(['METASERVER_UNAVAILABLE', 'NOT_LEADER', 'TRANSPORT_UNAVAILABLE']);
const ok = (r: HealthResult) => r.error === undefined && r.stats !== undefined && (r.http === undefined || r.http.ok);
const ms = (v: number) => Math.round(v * 1000) / 1000;

function etcdJson(e: EtcdHealth) {
  return {
    endpoints: e.endpoints,
    key: e.key,
    reachable: e.reachable,
    rttMs: ms(e.rttMs),
    ...(e.error ? { error: e.error } : {}),
    leader: e.leader
      ? {
          addr: e.leader.addr,
          epoch: e.leader.epoch.toString(),
          since: isoTime(BigInt(e.leader.sinceMs)),
          replicaId: e.leader.replicaId,
        }
      : null,
  };
}

function etcdLines(e: EtcdHealth): [string, string][] {
  const where = `${e.endpoints.join(',')} (${e.reachable ? `reachable, ${ms(e.rttMs)} ms` : `unreachable: ${e.error}`})`;
  const l = e.leader;
  const leader = l
    ? `${l.replicaId || '?'} at ${l.addr}, epoch ${l.epoch}, since ${isoTime(BigInt(l.sinceMs))} (${ago(BigInt(l.sinceMs))})`
    : e.reachable
      ? `none elected (${e.key} is empty)`
      : 'unknown';
  return [
    ['etcd', where],
    ['etcd leader', leader],
  ];
}

export const healthPrinter: Printer<HealthResult> = {
  json: (r) => ({
    ok: ok(r),
    addr: r.addr,
    epoch: r.stats ? r.stats.epoch.toString() : null,
    rttMs: r.rttMs === undefined ? null : ms(r.rttMs),
    uptimeSecs:
      !r.stats || r.stats.startedAtMs === 0n
        ? null
        : Math.max(0, Math.floor((Date.now() - Number(r.stats.startedAtMs)) / 1000)),
    liveNodes: r.stats ? jsonInt(r.stats.liveNodes) : null,
    staleNodes: r.stats ? jsonInt(r.stats.staleNodes) : null,
    blocks: r.stats ? jsonInt(r.stats.blocks) : null,
    leader: leaderJson(r.stats?.leader),
    ...(r.etcd ? { etcd: etcdJson(r.etcd) } : {}),
    ...(r.http
      ? {
          http: { addr: r.http.addr, status: r.http.status, ok: r.http.ok, rttMs: ms(r.http.rttMs), body: r.http.body },
        }
      : {}),
    ...(r.error ? { error: { code: r.error.code, message: r.error.message.replace(/\s+/g, ' ') } } : {}),
  }),
  table: (r) => {
    const s = r.stats;
    return renderPairs([
      ['status', ok(r) ? 'ok' : 'unhealthy'],
      ...(r.etcd ? etcdLines(r.etcd) : []),
      ...(r.error ? [['error', `${r.error.code}: ${r.error.message.replace(/\s+/g, ' ')}`] as [string, string]] : []),
      ...(s
        ? ([
            ['metaserver', `${r.addr} (grpc round trip ${ms(r.rttMs ?? 0)} ms)`],
            ['leader', leaderLine(s.leader)],
            ['epoch', s.epoch.toString()],
            ['uptime', s.startedAtMs === 0n ? '-' : duration(Date.now() - Number(s.startedAtMs))],
            ['nodes', `${count(s.liveNodes)} live, ${count(s.staleNodes)} stale`],
            ['blocks', count(s.blocks)],
          ] as [string, string][])
        : []),
      ...(r.http
        ? [
            ['http /health', `${r.http.addr}: ${r.http.status}${r.http.ok ? ' ok' : ''} (${ms(r.http.rttMs)} ms)`] as [
              string,
              string,
            ],
          ]
        : []),
    ]);
  },
  exitCode: (r) =>
    ok(r) ? EXIT.OK : r.error && CANNOT_CONNECT.has(r.error.code) ? EXIT.CANNOT_CONNECT : EXIT.SERVER_ERROR,
};
