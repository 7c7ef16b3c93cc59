import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '@kvfabric/common/observability';
import { NamespaceRegistry } from './namespaces.js';
import { QueryFetches, type FetchOutcome, type FetchRequest } from './query-fetches.js';

const ns = new NamespaceRegistry().ensure('ns', { tpSize: 1, replicated: false, segments: 1, segmentBytes: 64 });

function setup() {
  let now = 0;
  const started: FetchRequest[] = [];
  const finishers: ((o: FetchOutcome | Error) => void)[] = [];
  const fetches = new QueryFetches({
    ttlMs: 1000,
    now: () => now,
    logger: silentLogger(),
    fetcher: {
      fetch: (req) => {
        started.push(req);
        return new Promise((resolve, reject) => finishers.push((o) => (o instanceof Error ? reject(o) : resolve(o))));
      },
    },
  });
  const req = (from: number): FetchRequest => ({ ns, packed: Buffer.alloc(32), hashLen: 8, from, count: 4 });
  return { fetches, started, finishers, req, advance: (ms: number) => (now += ms) };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

test('a started fetch is found by (engine, request id) until forgotten, with its outcome once done', async () => {
  const { fetches, started, finishers, req } = setup();
  const f = fetches.start('e1', 'r1', req(1));
  assert.equal(started.length, 1);
  assert.equal(fetches.get('e1', 'r1'), f);
  assert.equal(fetches.get('e2', 'r1'), undefined, 'keyed by engine too');
  assert.equal(f.done, false);
  assert.equal(f.local, 1);
  finishers[0]!({ ssd: 1, remote: 2 });
  await tick();
  assert.equal(f.done, true);
  assert.deepEqual(f.outcome, { ssd: 1, remote: 2 });
  fetches.forget('e1', 'r1');
  assert.equal(fetches.get('e1', 'r1'), undefined);
});

test('a failed fetch finishes with nothing fetched', async () => {
  const { fetches, finishers, req } = setup();
  const f = fetches.start('e1', 'r1', req(0));
  finishers[0]!(new Error('boom'));
  await tick();
  assert.equal(f.done, true);
  assert.deepEqual(f.outcome, { ssd: 0, remote: 0 });
});

test('wait resolves when the fetch finishes, or when its instance is woken', async () => {
  const { fetches, finishers, req } = setup();
  const f = fetches.start('e1', 'r1', req(0));
  let woke = 0;
  void fetches.wait(f, 'i1', 60_000).then(() => woke++);
  void fetches.wait(f, 'i2', 60_000).then(() => woke++);
  fetches.wakeInstance('i1');
  await tick();
  assert.equal(woke, 1, 'only the instance that went away');
  finishers[0]!({ ssd: 0, remote: 4 });
  await tick();
  await tick();
  assert.equal(woke, 2);
});

test('dropEngine forgets only that engine; sweep forgets fetches older than the TTL', () => {
  const { fetches, req, advance } = setup();
  fetches.start('e1', 'r1', req(0));
  fetches.start('e1', 'r2', req(0));
  fetches.start('e2', 'r1', req(0));
  fetches.dropEngine('e1');
  assert.equal(fetches.size, 1);
  advance(999);
  fetches.sweep();
  assert.equal(fetches.size, 1);
  advance(1);
  fetches.sweep();
  assert.equal(fetches.size, 0);
});
