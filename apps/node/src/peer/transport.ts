// Picks and creates the node's one-sided read transport (DESIGN §6): `verbs` when asked for or, with `auto`,
// when a usable RDMA device exists; else `tcp`. The choice and its reason are logged once at start-up.
import { isIPv4 } from 'node:net';
import * as native from '@kvfabric/native';
import type { Pool, Transport, TransportEvent } from '@kvfabric/native';
import { KvError, parseHostPort, type Logger } from '@kvfabric/common';

export type TransportChoice = 'auto' | 'verbs' | 'tcp';

/** The verbs transport as this module uses it; looked up at run time so builds without it still load. */
interface VerbsTransportClass {
  available(): boolean | { ok?: boolean; available?: boolean; reason?: string | null };
  create(options: Record<string, unknown>): Promise<Transport>;
}

function verbsClass(): VerbsTransportClass | undefined {
  const v = (native as Record<string, unknown>).VerbsTransport as VerbsTransportClass | undefined;
  return v && typeof v.available === 'function' && typeof v.create === 'function' ? v : undefined;
}

/** Whether verbs can be used here, and why not. Never throws. */
export function verbsAvailability(): { ok: boolean; reason: string } {
  const v = verbsClass();
  if (!v) return { ok: false, reason: 'this build has no verbs transport' };
  try {
    const a = v.available();
    if (typeof a === 'boolean') return { ok: a, reason: a ? 'RDMA device found' : 'no usable RDMA device' };
    const ok = a.ok ?? a.available ?? false;
    return { ok, reason: a.reason ?? (ok ? 'RDMA device found' : 'no usable RDMA device') };
  } catch (err) {
    return { ok: false, reason: `verbs probe failed: ${(err as Error).message}` };
  }
}

/** Resolves `auto` to a concrete kind, with the reason. Throws CONFIG_INVALID when verbs is demanded but unusable. */
export function chooseTransport(choice: TransportChoice): { kind: 'verbs' | 'tcp'; reason: string } {
  if (choice === 'tcp') return { kind: 'tcp', reason: 'requested with --transport tcp' };
  const v = verbsAvailability();
  if (choice === 'verbs') {
    if (!v.ok) throw new KvError('CONFIG_INVALID', `transport: verbs requested but unavailable: ${v.reason}`);
    return { kind: 'verbs', reason: 'requested with --transport verbs' };
  }
  return v.ok ? { kind: 'verbs', reason: `auto: ${v.reason}` } : { kind: 'tcp', reason: `auto: verbs unavailable (${v.reason})` };
}

export interface CreateTransportOptions {
  kind: 'verbs' | 'tcp';
  pool: Pool;
  /** The node's peer address (--addr); its host is where the tcp data server listens. */
  addr: string;
  streamsPerPeer: number;
  nics?: string[];
  logger: Logger;
  timeoutMs?: number;
}

export async function createTransport(opts: CreateTransportOptions): Promise<Transport> {
  const onEvent = (e: TransportEvent) => opts.logger.warn({ peer: e.peer, grant: e.grant, reason: e.message }, 'transport refused a peer request');
  if (opts.kind === 'verbs') {
    const v = verbsClass();
    if (!v) throw new KvError('CONFIG_INVALID', 'transport: verbs is not in this build');
    return v.create({ pool: opts.pool, nics: opts.nics, qpsPerPeer: opts.streamsPerPeer, onEvent });
  }
  let { host } = parseHostPort(opts.addr, 'addr');
  if (host === 'localhost') host = '127.0.0.1';
  if (!isIPv4(host)) throw new KvError('CONFIG_INVALID', `addr: the tcp transport needs an IPv4 host, got ${JSON.stringify(host)}`);
  return native.TcpTransport.create({
    pool: opts.pool,
    host,
    connectionsPerPeer: opts.streamsPerPeer,
    onEvent,
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  });
}
