// Printer for ListNamespaces: {"epoch","namespaces":[{"name","blocks","owners"}]}.
import type { ListNamespacesResponse } from '@kvfabric/proto/metaserver';
import type { Printer } from '../command.js';
import { count, jsonInt, renderTable } from './format.js';

const sorted = (res: ListNamespacesResponse) => [...res.namespaces].sort((a, b) => a.name.localeCompare(b.name));

export const namespacesPrinter: Printer<ListNamespacesResponse> = {
  json: (res) => ({
    epoch: res.epoch.toString(),
    namespaces: sorted(res).map((n) => ({ name: n.name, blocks: jsonInt(n.blocks), owners: jsonInt(n.owners) })),
  }),
  table: (res) =>
    res.namespaces.length === 0
      ? 'no namespaces\n'
      : renderTable(
          [{ title: 'NAMESPACE' }, { title: 'BLOCKS', right: true }, { title: 'OWNERS', right: true }],
          sorted(res).map((n) => [n.name, count(n.blocks), count(n.owners)]),
        ),
};
