// kvfabric nodes: every node session the metaserver knows, live and stale.
import type { ListNodesResponse } from '@kvfabric/proto/metaserver';
import { defineCommand } from '../command.js';
import { nodesPrinter } from '../printers/nodes.js';

export const nodes = defineCommand({
  name: 'nodes',
  summary: 'List the nodes the metaserver knows (address, state, indexed blocks, pool usage).',
  flags: {},
  needsServer: true,
  parse: () => ({}),
  run: (_args, { client }): Promise<ListNodesResponse> => client!.listNodes(),
  printer: nodesPrinter,
});
