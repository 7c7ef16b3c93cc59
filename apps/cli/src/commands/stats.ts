// kvfabric stats: the metaserver's counters (blocks, owners, nodes, index memory, leader).
import type { GetStatsResponse } from '@kvfabric/proto/metaserver';
import { defineCommand } from '../command.js';
import { statsPrinter } from '../printers/stats.js';

export const stats = defineCommand({
  name: 'stats',
  summary: 'Show metaserver statistics: blocks, owners, namespaces, nodes, index memory, leader.',
  flags: {},
  needsServer: true,
  parse: () => ({}),
  run: (_args, { client }): Promise<GetStatsResponse> => client!.getStats(),
  printer: statsPrinter,
});
