// The layering rules, executable: `npm run check:deps` (and .ci/run) fails on any violation.
//   packages/* and native/ are libraries; apps/* are programs that nothing outside the app imports, except bench
//   through an app's explicit ./internal export; generated protobuf code is imported only by adapters (gRPC
//   services, clients, links, the app wiring, the CLI); pure cores import neither gRPC, protobuf, etcd,
//   OpenTelemetry nor pino; no cycles, type-only imports included; the engine SDK loads only the engine side of the
//   native addon. Declared-vs-imported dependencies: knip.
/** Files allowed to import generated protobuf code. */
const ADAPTERS = [
  '^packages/(client|proto)/',
  '^apps/cli/',
  '^bench/',
  '\\.test\\.ts$',
  '^apps/[^/]+/test/',
  '^apps/[^/]+/src/.*(service|stream|client|link|links|app|wiring|ha-mode|main)\\.ts$',
];
/** Pure cores: plain TypeScript with unit tests; no transport, storage client or telemetry library. */
const PURE = [
  '^packages/common/src/(errors|sizes|config|validate|packed-hashes|table-hash|chained-block-hash|cbor-canonical|duration-buckets|index)\\.ts$',
  '^packages/common/src/etcd/leader-record\\.ts$',
  '^apps/metaserver/src/store/',
  '^apps/node/src/(hash-table|leases|pin-table|eviction|namespaces|instances|duplicate-hashes|pending-block-updates|block-saver)\\.ts$',
  '^apps/node/src/peer-wire/',
  '^apps/node/src/fetch/(block-flights|pull-types|pulled-blocks|read-pipeline)\\.ts$',
  '^apps/node/src/ssd/(journal-codec|journal-replay|extent-allocator|ssd-catalog)\\.ts$',
];
const IMPURE_LIBS = [
  'node_modules/(@grpc|@opentelemetry|pino|etcd3|p-queue)',
  '^packages/proto/',
  '^packages/common/src/(rpc|observability|logger|metrics|http|signals|etcd/)',
];

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'import cycles, type-only ones included',
      from: {},
      to: { circular: true },
    },
    {
      name: 'libraries-never-import-apps',
      severity: 'error',
      from: { path: '^(packages|native)/' },
      to: { path: '^apps/' },
    },
    {
      name: 'apps-never-import-other-apps',
      severity: 'error',
      from: { path: '^apps/([^/]+)/' },
      to: { path: '^apps/', pathNot: '^apps/$1/' },
    },
    {
      name: 'bench-imports-apps-only-through-internal',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^apps/', pathNot: '^apps/[^/]+/src/internal\\.ts$' },
    },
    {
      name: 'engine-sdk-uses-only-the-engine-side-native-addon',
      severity: 'error',
      comment:
        "the engine SDK hands regions over through @kvfabric/native/fd-pass (the small kvfabric_fdpass addon); the pool, copy engine and transports are the node's",
      from: { path: '^packages/client/src/', pathNot: '\\.test\\.ts$' },
      to: { path: '^native/lib/', pathNot: '^native/lib/(fd-pass|region-handover-protocol|errors|loader)\\.ts$' },
    },
    {
      name: 'generated-code-only-in-adapters',
      severity: 'error',
      from: { pathNot: ADAPTERS },
      to: { path: '^packages/proto/src/gen/' },
    },
    {
      name: 'generated-code-through-the-proto-package',
      severity: 'error',
      comment:
        'by the package name (@kvfabric/proto or a service subpath like @kvfabric/proto/metaserver), never a relative path',
      from: { pathNot: '^packages/proto/' },
      to: { path: '^packages/proto/src/gen/', dependencyTypes: ['local'] },
    },
    {
      name: 'pure-cores-stay-pure',
      severity: 'error',
      comment:
        'nothing a pure core imports, directly or through other modules, is a transport, telemetry or etcd library',
      from: { path: PURE, pathNot: '\\.test\\.ts$' },
      to: { path: IMPURE_LIBS, reachable: true },
    },
    { name: 'no-unresolvable', severity: 'error', from: {}, to: { couldNotResolve: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|build|node_modules|\\.turbo)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['source', 'import', 'node', 'default'],
      extensions: ['.ts', '.js', '.mjs', '.json', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
