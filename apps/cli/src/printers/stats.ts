// Printer for GetStats.
import { formatBytes } from '@kvfabric/common';
import type { GetStatsResponse, LeaderInfo } from '@kvfabric/proto/metaserver';
import type { Printer } from '../command.js';
import { ago, count, duration, isoTime, jsonInt, renderPairs } from './format.js';

/** The replica that answered, as it describes itself: which one leads and since when. */
export function leaderJson(leader: LeaderInfo | undefined) {
  if (!leader) return null;
  return {
    addr: leader.addr,
    epoch: leader.epoch.toString(),
    since: isoTime(leader.sinceMs),
    forSecs: leader.sinceMs === 0n ? null : Math.max(0, Math.floor((Date.now() - Number(leader.sinceMs)) / 1000)),
    ha: leader.ha,
    replicaId: leader.replicaId,
  };
}

/** One line: "m1 at 10.0.0.5:50056 (ha), epoch 16777217, since 2025-01-01T00:00:00.000Z (5m 3s ago)". */
export function leaderLine(leader: LeaderInfo | undefined): string {
  if (!leader) return '-';
  const who = leader.ha
    ? `${leader.replicaId || '?'} at ${leader.addr || '-'} (ha)`
    : `${leader.addr || '-'} (single, no HA)`;
  const since = leader.sinceMs === 0n ? '' : `, since ${isoTime(leader.sinceMs)} (${ago(leader.sinceMs)})`;
  return `${who}, epoch ${leader.epoch}${since}`;
}

export function bytesPerOwner(res: GetStatsResponse): number | null {
  return res.owners > 0n ? Math.round((Number(res.indexBytes) / Number(res.owners)) * 10) / 10 : null;
}

export const statsPrinter: Printer<GetStatsResponse> = {
  json: (res) => ({
    epoch: res.epoch.toString(),
    startedAt: isoTime(res.startedAtMs),
    uptimeSecs: res.startedAtMs === 0n ? null : Math.max(0, Math.floor((Date.now() - Number(res.startedAtMs)) / 1000)),
    blocks: jsonInt(res.blocks),
    owners: jsonInt(res.owners),
    namespaces: jsonInt(res.namespaces),
    liveNodes: jsonInt(res.liveNodes),
    staleNodes: jsonInt(res.staleNodes),
    indexBytes: jsonInt(res.indexBytes),
    indexBytesPerOwner: bytesPerOwner(res),
    leader: leaderJson(res.leader),
    leaderChanges: jsonInt(res.leaderChanges),
  }),
  table: (res) => {
    const perOwner = bytesPerOwner(res);
    const leader = res.leader;
    return renderPairs([
      ['epoch', res.epoch.toString()],
      [
        'started',
        res.startedAtMs === 0n
          ? '-'
          : `${isoTime(res.startedAtMs)} (up ${duration(Date.now() - Number(res.startedAtMs))})`,
      ],
      ['blocks', count(res.blocks)],
      ['owners', count(res.owners)],
      ['namespaces', count(res.namespaces)],
      ['nodes', `${count(res.liveNodes)} live, ${count(res.staleNodes)} stale`],
      ['index memory', `${formatBytes(res.indexBytes)}${perOwner === null ? '' : ` (${perOwner} B per owner)`}`],
      ['leader', leader ? `${leaderLine(leader)}; ${count(res.leaderChanges)} leader changes` : '-'],
    ]);
  },
};
