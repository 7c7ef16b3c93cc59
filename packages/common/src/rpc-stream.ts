// The server side of a pipelined bidi stream (one answer per request message, answered out of order), wrapped
// like every unary call: timing, metrics, logging and error mapping in one place.
import * as grpc from '@grpc/grpc-js';
import { toKvError, type KvError, type KvErrorCode } from './errors.js';
import { errorToStatus, grpcStatusOf } from './rpc-errors.js';
import type { RpcContext } from './rpc-context.js';
import { RpcTally } from './rpc-tally.js';

/** The items of a pipelined bidi stream: every request message gets exactly one answer message. */
export interface StreamItems<Req, Res> {
  /** Answers one request (may be async). A throw is answered with `itemError` and the stream goes on. */
  answer(request: Req): Res | Promise<Res>;
  /** The answer for a request that failed with err (carrying the request's id). */
  itemError(request: Req, err: KvError): Res;
  /**
   * Checked after `ctx.guard` at the start and before every request; a throw ends the whole stream with that error
   * (e.g. the index the stream was opened on was replaced).
   */
  check?(): void;
  /**
   * The `method` label of a request's metrics (default: the stream's method), e.g. "dataPlane.save" for the items of
   * a stream that carries several kinds. Return one of a few constant strings: attributes are built once per label.
   */
  label?(request: Req): string;
}

/**
 * Wraps a bidi stream of independent items (a pipeline of unary-like requests) the way `unary` wraps a call:
 * `ctx.guard` (and `items.check`) at the start and before every message, where a throw ends the stream with the
 * mapped status and `ctx.errorMetadata` (a follower refuses streams as it refuses calls); per message the same
 * metrics as a unary call (`rpc_total` by status, `rpc_errors_total` by code, `rpc_duration_seconds`); per-item
 * errors mapped by `toKvError` and logged like refused calls; metrics go through an RpcTally (attribute objects
 * reused, `items.label` names an item's method; counters added once per event-loop turn). Answers may
 * go out in any order (async answers finish when they finish). Reading pauses while written answers are not drained.
 * The stream ends (OK) after the client half-closes and every answer is written.
 */
export function pipelineStream<Req, Res>(
  method: string,
  items: StreamItems<Req, Res>,
  ctx: RpcContext,
): grpc.handleBidiStreamingCall<Req, Res> {
  const { logger } = ctx;
  const tally = new RpcTally(ctx.instruments);
  return (call) => {
    let pending = 0; // async answers not yet written
    let halfClosed = false;
    let done = false; // status sent (or the client went away): nothing more is written
    let paused = false;
    const admit = () => {
      ctx.guard?.(method);
      items.check?.();
    };
    const refuse = (thrown: unknown) => {
      if (done) return;
      done = true;
      const err = toKvError(thrown);
      if (err.code === 'INTERNAL') logger.error({ err: err.cause ?? err, method }, 'stream failed');
      else logger.debug({ method, code: err.code, msg: err.message }, 'stream refused');
      tally.refused(method, grpcStatusOf(err), err.code);
      call.emit('error', errorToStatus(err, ctx.errorMetadata?.(err)));
    };
    const finishIfDone = () => {
      if (halfClosed && pending === 0 && !done) {
        done = true;
        call.end();
      }
    };
    const reply = (request: Req, started: number, failed: boolean, outcome: unknown) => {
      const label = items.label ? items.label(request) : method;
      let status = grpc.status.OK;
      let code: KvErrorCode | undefined;
      let response = outcome as Res;
      if (failed) {
        const err = toKvError(outcome);
        if (err.code === 'INTERNAL') logger.error({ err: err.cause ?? err, method: label }, 'stream item failed');
        else logger.debug({ method: label, code: err.code, msg: err.message }, 'stream item refused');
        status = grpcStatusOf(err);
        code = err.code;
        response = items.itemError(request, err);
      }
      tally.record(label, (performance.now() - started) / 1e3, status, code);
      if (done) return;
      if (!call.write(response) && !paused) {
        paused = true;
        call.pause();
        call.once('drain', () => {
          paused = false;
          call.resume();
        });
      }
    };
    try {
      admit();
    } catch (err) {
      refuse(err);
      return;
    }
    call.on('data', (request: Req) => {
      if (done) return;
      const started = performance.now(); // a double: no BigInt per item
      try {
        admit();
      } catch (err) {
        refuse(err);
        return;
      }
      let out: Res | Promise<Res>;
      try {
        out = items.answer(request);
      } catch (err) {
        reply(request, started, true, err);
        return;
      }
      if (!(out instanceof Promise)) {
        reply(request, started, false, out);
        return;
      }
      pending++;
      out.then(
        (response) => {
          pending--;
          reply(request, started, false, response);
          finishIfDone();
        },
        (err: unknown) => {
          pending--;
          reply(request, started, true, err);
          finishIfDone();
        },
      );
    });
    call.on('end', () => {
      halfClosed = true;
      finishIfDone();
    });
    call.on('cancelled', () => {
      done = true;
    });
    call.on('error', () => {
      done = true; // refused above, or the transport failed: grpc-js ends the call
    });
  };
}
