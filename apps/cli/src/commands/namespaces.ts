// kvfabric namespaces: every namespace in the index with its block and owner counts.
import type { ListNamespacesResponse } from '@kvfabric/proto/metaserver';
import { defineCommand } from '../command.js';
import { namespacesPrinter } from '../printers/namespaces.js';

export const namespaces = defineCommand({
  name: 'namespaces',
  summary: 'List the namespaces in the index (distinct blocks and (block, owner) pairs).',
  flags: {},
  needsServer: true,
  parse: () => ({}),
  run: (_args, { client }): Promise<ListNamespacesResponse> => client!.listNamespaces(),
  printer: namespacesPrinter,
});
