// Two tcp transports in this process on 127.0.0.1, one serving and one reading, for the transport's tests.
import { Pool } from '../lib/pool.js';
import { TcpTransport } from '../lib/tcp-transport.js';
import type { TransportEvent } from '../lib/transport.js';

/** Two nodes in this process: `a` serves, `b` reads; b knows a as 'A', a knows b as 'B'. */
export async function pair(opts: { conns?: number; poolBytes?: number; events?: TransportEvent[] } = {}) {
  const poolBytes = opts.poolBytes ?? 64 << 20;
  const pa = Pool.create({ sizeBytes: poolBytes });
  const pb = Pool.create({ sizeBytes: poolBytes });
  const events = opts.events;
  const a = await TcpTransport.create({
    pool: pa,
    connectionsPerPeer: opts.conns ?? 4,
    ...(events ? { onEvent: (e: TransportEvent) => void events.push(e) } : {}),
  });
  const b = await TcpTransport.create({ pool: pb, connectionsPerPeer: opts.conns ?? 4 });
  await b.completeConnect('A', await a.acceptPeer('B', await b.beginConnect('A')));
  return {
    pa,
    pb,
    a,
    b,
    async close() {
      await a.close();
      await b.close();
      pa.close();
      pb.close();
    },
  };
}
