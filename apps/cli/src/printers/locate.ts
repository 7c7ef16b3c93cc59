// Printer for `locate`: {"namespace","queried","nodes":[{"addr","prefixLen","ssdBlocks",...}]} and with --blocks
// "blocks":[{"hash","owners":[addr,...],"tiers":["dram"|"ssd"|"both",...]}] (tiers[i]: where owners[i] holds it).
// The table prints one row per (block, owner) with its TIER.
import { formatBytes, tierName } from '@kvfabric/common';
import type { OwnersResult, PrefixResult } from '@kvfabric/client/metaserver';
import type { Printer } from '../command.js';
import { count, jsonInt, renderTable, transportName } from './format.js';

export interface LocateResult {
  namespace: string;
  hashes: Buffer[];
  prefix: PrefixResult;
  owners: OwnersResult | undefined;
}

export const locatePrinter: Printer<LocateResult> = {
  json: (r) => ({
    namespace: r.namespace,
    queried: r.hashes.length,
    epoch: r.prefix.epoch.toString(),
    nodes: r.prefix.nodes.map((n) => ({
      addr: n.addr,
      prefixLen: n.prefixLen,
      ssdBlocks: n.ssdBlocks,
      nodeId: n.nodeId,
      transports: n.transports.map(transportName),
      poolUsedBytes: jsonInt(n.poolUsedBytes),
      poolCapacityBytes: jsonInt(n.poolCapacityBytes),
    })),
    ...(r.owners
      ? {
          blocks: r.hashes.map((h, i) => ({
            hash: h.toString('hex'),
            owners: (r.owners!.owners[i] ?? []).map((o) => o.addr),
            tiers: (r.owners!.owners[i] ?? []).map((o) => tierName(o.tier)),
          })),
        }
      : {}),
  }),
  table: (r) => {
    const best = r.prefix.nodes[0]?.prefixLen ?? 0;
    let out = `namespace ${r.namespace}: ${count(r.hashes.length)} hashes queried, longest prefix ${best} on ${r.prefix.nodes.length} node(s)\n`;
    if (r.prefix.nodes.length > 0) {
      out +=
        '\n' +
        renderTable(
          [
            { title: 'ADDR' },
            { title: 'PREFIX', right: true },
            { title: 'ON SSD ONLY', right: true },
            { title: 'POOL USED', right: true },
            { title: 'POOL SIZE', right: true },
            { title: 'TRANSPORTS' },
            { title: 'NODE ID' },
          ],
          r.prefix.nodes.map((n) => [
            n.addr,
            String(n.prefixLen),
            String(n.ssdBlocks),
            formatBytes(n.poolUsedBytes),
            formatBytes(n.poolCapacityBytes),
            n.transports.map(transportName).join(',') || '-',
            n.nodeId,
          ]),
        );
    }
    if (r.owners) {
      out +=
        '\n' +
        renderTable(
          [{ title: 'BLOCK', right: true }, { title: 'HASH' }, { title: 'OWNER' }, { title: 'TIER' }],
          r.hashes.flatMap((h, i) => {
            const owners = r.owners!.owners[i] ?? [];
            const hash = h.toString('hex');
            if (owners.length === 0) return [[String(i), hash, '-', '-']];
            return owners.map((o) => [String(i), hash, o.addr, tierName(o.tier)]);
          }),
        );
    }
    return out;
  },
};
