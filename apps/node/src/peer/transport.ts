// Picks and creates the node's one-sided read transport (DESIGN §6): `verbs` when asked for or, with `auto`,
// when a usable RDMA device exists; else `tcp`. The choice and its reason are logged once at start-up.
import { isIPv4 } from 'node:net';
import { constants } from 'node:os';
import * as native from '@kvfabric/native';
import type { Pool, Transport, TransportEvent, VerbsTransportOptions } from '@kvfabric/native';
import { KvError, parseHostPort } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';

export type TransportChoice = 'auto' | 'verbs' | 'tcp';

const EVENT_TEXT: Record<TransportEvent['kind'], string> = {
  refused: 'transport refused a peer request',
  broken: 'transport connection broke (it is re-handshaked on the next pull)',
  async: 'RDMA device event',
  error: 'transport error',
};

/** Whether verbs can be used here, and why not. Never throws. */
export function verbsAvailability(allowPoolRkey = false): { ok: boolean; reason: string } {
  try {
    return native.VerbsTransport.available({ allowPoolRkey });
  } catch (err) {
    return { ok: false, reason: `verbs probe failed: ${(err as Error).message}` };
  }
}

/** Resolves `auto` to a concrete kind, with the reason. Throws CONFIG_INVALID when verbs is demanded but unusable. */
export function chooseTransport(
  choice: TransportChoice,
  allowPoolRkey = false,
): { kind: 'verbs' | 'tcp'; reason: string } {
  if (choice === 'tcp') return { kind: 'tcp', reason: 'requested with --transport tcp' };
  const v = verbsAvailability(allowPoolRkey);
  if (choice === 'verbs') {
    if (!v.ok) throw new KvError('CONFIG_INVALID', `transport: verbs requested but unavailable: ${v.reason}`);
    return { kind: 'verbs', reason: 'requested with --transport verbs' };
  }
  return v.ok
    ? { kind: 'verbs', reason: `auto: ${v.reason}` }
    : { kind: 'tcp', reason: `auto: verbs unavailable (${v.reason})` };
}

export interface CreateTransportOptions {
  kind: 'verbs' | 'tcp';
  pool: Pool;
  /** The node's peer address (--addr); its host is where the tcp data server listens. */
  addr: string;
  /** tcp: the data server's port (0: any free one), and the host:port put in the handshake for peers instead. */
  tcpDataPort?: number;
  tcpAdvertiseAddr?: string;
  streamsPerPeer: number;
  nics?: string[];
  logger: Logger;
  timeoutMs?: number;
  /** tcp only: a reader connection taking none of its queued answers this long is closed (--reader-stall-secs). */
  readerStallMs?: number;
  /** verbs only (the --verbs-* flags). */
  verbs?: Pick<
    VerbsTransportOptions,
    'portNum' | 'gidIndex' | 'trafficClass' | 'serviceLevel' | 'ackTimeout' | 'retryCount' | 'allowPoolRkey'
  >;
}

export async function createTransport(opts: CreateTransportOptions): Promise<Transport> {
  const onEvent = (e: TransportEvent) =>
    opts.logger.warn(
      { event: e.kind, peer: e.peer || undefined, grant: e.grant, reason: e.message },
      EVENT_TEXT[e.kind],
    );
  if (opts.kind === 'verbs') {
    const t = await native.VerbsTransport.create({
      pool: opts.pool,
      ...(opts.nics?.length ? { nics: opts.nics } : {}),
      qpsPerPeer: opts.streamsPerPeer,
      onEvent,
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
      ...opts.verbs,
    });
    for (const n of t.nics()) {
      opts.logger.info(
        {
          nic: n.name,
          gidIndex: n.gidIndex,
          gidType: n.gidType,
          gid: n.gid,
          numaNode: n.numaNode,
          mtu: n.mtu,
          qpDepth: n.qpDepth,
          cqDepth: n.cqDepth,
          readDepth: n.rdAtomInit,
          memoryWindows: n.mwType2,
          registerMs: Math.round(n.registerMs),
        },
        `verbs: ${n.name} ready`,
      );
      if (!n.mwType2)
        opts.logger.warn(
          { nic: n.name },
          'verbs: no type-2 memory windows: peers read through the pool-wide rkey (--verbs-allow-pool-rkey); grants do not limit what a connected peer can read',
        );
    }
    return t;
  }
  let { host } = parseHostPort(opts.addr, 'addr');
  if (host === 'localhost') host = '127.0.0.1';
  if (!isIPv4(host))
    throw new KvError('CONFIG_INVALID', `addr: the tcp transport needs an IPv4 host, got ${JSON.stringify(host)}`);
  const advertised =
    opts.tcpAdvertiseAddr === undefined ? undefined : parseHostPort(opts.tcpAdvertiseAddr, 'tcp-advertise-addr');
  if (advertised && (!isIPv4(advertised.host) || advertised.port === 0))
    throw new KvError(
      'CONFIG_INVALID',
      `tcp-advertise-addr: expected an IPv4 host and a non-zero port, got ${JSON.stringify(opts.tcpAdvertiseAddr!.slice(0, 64))}`,
    );
  return native.TcpTransport.create({
    pool: opts.pool,
    host,
    port: opts.tcpDataPort ?? 0,
    ...(advertised ? { advertiseHost: advertised.host, advertisePort: advertised.port } : {}),
    connectionsPerPeer: opts.streamsPerPeer,
    onEvent,
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.readerStallMs ? { stallTimeoutMs: Math.max(1, Math.round(opts.readerStallMs)) } : {}),
  });
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** Why the transport degrades the node's health (empty when it does not): for /health. */
export function transportProblems(t: Transport): string[] {
  const errno = t.counters().acceptErrno;
  if (errno === 0) return [];
  const name = ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
  return [`transport: accepting peer connections fails (${name}); retrying with back-off, peers cannot connect`];
}
