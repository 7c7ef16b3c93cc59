// Printer for ListNodes: {"epoch","leader":{...},"nodes":[{"addr","state","blocks",...}]}; the table starts with
// the line saying which metaserver replica answered as leader and since when.
import { formatBytes } from '@kvfabric/common';
import type { ListNodesResponse } from '@kvfabric/proto/metaserver';
import type { Printer } from '../command.js';
import { ago, count, isoTime, jsonInt, renderTable, stateName, transportName } from './format.js';
import { leaderJson, leaderLine } from './stats.js';

/** Nodes by address, then node id: a stable order for people and scripts. */
function sorted(res: ListNodesResponse) {
  return [...res.nodes].sort((a, b) => a.addr.localeCompare(b.addr) || a.nodeId.localeCompare(b.nodeId));
}

export const nodesPrinter: Printer<ListNodesResponse> = {
  json: (res) => ({
    epoch: res.epoch.toString(),
    leader: leaderJson(res.leader),
    nodes: sorted(res).map((n) => ({
      addr: n.addr,
      state: stateName(n.state),
      blocks: jsonInt(n.indexedBlocks),
      nodeId: n.nodeId,
      transports: n.transports.map(transportName),
      residentBlocks: jsonInt(n.stats?.blocks ?? 0n),
      poolUsedBytes: jsonInt(n.stats?.poolUsedBytes ?? 0n),
      poolCapacityBytes: jsonInt(n.stats?.poolCapacityBytes ?? 0n),
      ssdUsedBytes: jsonInt(n.stats?.ssdUsedBytes ?? 0n),
      ssdCapacityBytes: jsonInt(n.stats?.ssdCapacityBytes ?? 0n),
      registeredAt: isoTime(n.registeredAtMs),
      lastHeartbeatAt: isoTime(n.lastHeartbeatMs),
    })),
  }),
  table: (res) => {
    const head = `leader ${leaderLine(res.leader)}\n\n`;
    if (res.nodes.length === 0) return `${head}no nodes\n`;
    return (
      head +
      renderTable(
        [
          { title: 'ADDR' },
          { title: 'STATE' },
          { title: 'BLOCKS', right: true },
          { title: 'POOL USED', right: true },
          { title: 'POOL SIZE', right: true },
          { title: 'SSD USED/SIZE', right: true },
          { title: 'TRANSPORTS' },
          { title: 'LAST HEARTBEAT' },
          { title: 'NODE ID' },
        ],
        sorted(res).map((n) => [
          n.addr,
          stateName(n.state),
          count(n.indexedBlocks),
          formatBytes(n.stats?.poolUsedBytes ?? 0n),
          formatBytes(n.stats?.poolCapacityBytes ?? 0n),
          n.stats?.ssdCapacityBytes
            ? `${formatBytes(n.stats.ssdUsedBytes)}/${formatBytes(n.stats.ssdCapacityBytes)}`
            : '-',
          n.transports.map(transportName).join(',') || '-',
          ago(n.lastHeartbeatMs),
          n.nodeId,
        ]),
      )
    );
  },
};
