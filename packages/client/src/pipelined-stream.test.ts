// PipelinedStream against a fake duplex stream: answers matched by id in any order, the first request on each stream
// flagged, deadlines and aborts failing one call, a broken stream failing only its own calls, retire and abandon.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvError } from '@kvfabric/common';
import { PipelinedStream, type Duplex } from './pipelined-stream.js';

interface Req {
  id: number;
  first: boolean;
  body: string;
}
interface Res {
  id: number;
  body: string;
}

/** A stream that records what is written; the test answers with `answer` or breaks it with `fail`. */
class FakeStream extends EventEmitter {
  readonly written: Req[] = [];
  ended = false;
  cancelled = false;
  write(req: Req): boolean {
    this.written.push(req);
    return true;
  }
  end(): void {
    this.ended = true;
  }
  cancel(): void {
    this.cancelled = true;
  }
  answer(id: number, body = `re:${id}`): void {
    this.emit('data', { id, body });
  }
  fail(err: unknown): void {
    this.emit('error', err);
  }
}

/** The fake streams hold no handle (a real gRPC stream does): keep the event loop alive for the deadline timer. */
function keepAlive(t: TestContext): void {
  const timer = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(timer));
}

function pipe(t: TestContext, deadlineMs = 60_000) {
  keepAlive(t);
  const streams: FakeStream[] = [];
  const p = new PipelinedStream<Req, Res>({
    deadlineMs,
    open: () => {
      const s = new FakeStream();
      streams.push(s);
      return s as unknown as Duplex<Req, Res>;
    },
    failure: (err) =>
      new KvError('TRANSPORT_UNAVAILABLE', `broken: ${err === undefined ? 'ended' : String((err as Error).message)}`),
    expired: (req) => new KvError('TRANSPORT_TIMEOUT', `no answer to ${req.body}`),
  });
  const call = (body: string, opts?: { deadlineMs?: number; signal?: AbortSignal }) =>
    p.call((id, first) => ({ id, first, body }), opts);
  return { p, streams, call };
}

test('answers are matched by id in any order; only the first request on a stream is flagged first', async (t) => {
  const { p, streams, call } = pipe(t);
  const calls = ['a', 'b', 'c'].map((b) => call(b));
  assert.equal(p.inFlight, 3);
  assert.equal(streams.length, 1, 'one stream for every call');
  const s = streams[0]!;
  assert.deepEqual(
    s.written.map((r) => [r.id, r.first, r.body]),
    [
      [1, true, 'a'],
      [2, false, 'b'],
      [3, false, 'c'],
    ],
  );
  s.answer(3);
  s.answer(1);
  s.answer(2);
  s.answer(2); // a duplicate answer is dropped
  assert.deepEqual(await Promise.all(calls), [
    { id: 1, body: 're:1' },
    { id: 2, body: 're:2' },
    { id: 3, body: 're:3' },
  ]);
  assert.equal(p.inFlight, 0);
});

test('a deadline or an abort fails one call; the stream stays and a late answer is dropped', async (t) => {
  const { p, streams, call } = pipe(t);
  const late = call('late', { deadlineMs: 20 });
  const ctl = new AbortController();
  const aborted = call('aborted', { signal: ctl.signal });
  const kept = call('kept');
  ctl.abort(new Error('caller gave up'));
  await assert.rejects(aborted, /caller gave up/);
  await assert.rejects(
    late,
    (e: unknown) => e instanceof KvError && e.code === 'TRANSPORT_TIMEOUT' && e.message === 'no answer to late',
  );
  const s = streams[0]!;
  s.answer(1);
  s.answer(2);
  s.answer(3);
  assert.deepEqual(await kept, { id: 3, body: 're:3' });
  assert.equal(streams.length, 1);
  await assert.rejects(call('pre-aborted', { signal: AbortSignal.abort(new Error('already')) }), /already/);
  assert.equal(p.inFlight, 0);
});

test('a broken stream fails its own calls only; the next call opens a new stream, flagged first again', async (t) => {
  const { p, streams, call } = pipe(t);
  const old = call('old');
  p.retire(); // e.g. GOAWAY: the old stream keeps its call, new calls go elsewhere
  assert.equal(streams[0]!.ended, true);
  const fresh = call('fresh');
  assert.equal(streams.length, 2);
  assert.deepEqual(
    streams[1]!.written.map((r) => [r.body, r.first]),
    [['fresh', true]],
  );
  streams[0]!.fail(new Error('reset'));
  await assert.rejects(
    old,
    (e: unknown) => e instanceof KvError && e.code === 'TRANSPORT_UNAVAILABLE' && e.message === 'broken: reset',
  );
  streams[1]!.answer(2);
  assert.deepEqual(await fresh, { id: 2, body: 're:2' });

  const ended = call('ended');
  streams[1]!.emit('end');
  await assert.rejects(ended, /broken: ended/);
  const next = call('next');
  assert.equal(streams.length, 3);
  assert.equal(streams[2]!.written[0]!.first, true);
  streams[2]!.answer(streams[2]!.written[0]!.id);
  assert.equal((await next).body, `re:${streams[2]!.written[0]!.id}`);
});

test('abandon rejects every call on every stream and cancels them', async (t) => {
  const { p, streams, call } = pipe(t);
  const a = call('a');
  p.retire();
  const b = call('b');
  p.abandon(new KvError('METASERVER_UNAVAILABLE', 'closed'));
  for (const c of [a, b]) await assert.rejects(c, /closed/);
  assert.deepEqual(
    streams.map((s) => s.cancelled),
    [true, true],
  );
  assert.equal(p.inFlight, 0);
  streams[0]!.fail(new Error('late')); // a late error of an abandoned stream is swallowed
  await sleep(1);
});

test('a request that cannot be built or a stream that cannot be opened fails the call alone', async (t) => {
  const { p, call } = pipe(t);
  await assert.rejects(
    p.call(() => {
      throw new KvError('INVALID_ARGUMENT', 'hashes: bad');
    }),
    /hashes: bad/,
  );
  const failing = new PipelinedStream<Req, Res>({
    deadlineMs: 1000,
    open: () => {
      throw new KvError('METASERVER_UNAVAILABLE', 'no leader known');
    },
    failure: () => new Error('unused'),
    expired: () => new KvError('TRANSPORT_TIMEOUT', 'unused'),
  });
  await assert.rejects(
    failing.call((id, first) => ({ id, first, body: 'x' })),
    /no leader known/,
  );
  assert.equal(failing.inFlight, 0);
  const ok = call('ok');
  assert.equal(p.inFlight, 1);
  p.abandon(new Error('done'));
  await assert.rejects(ok, /done/);
});
