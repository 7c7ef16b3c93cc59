// Loopback ports for test servers. Ports are drawn below the kernel's ephemeral range (ip_local_port_range), where
// outgoing connections never take them, and checked free by binding; the only race left is with another test
// drawing the same port at the same moment, which startMetaserver/startNode absorb by retrying (isAddrInUse).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOW = 10_000;

/** The first port of the kernel's ephemeral range (32768 on Linux by default). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > LOW + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free TCP port on 127.0.0.1 outside the ephemeral range. */
export async function freePort(): Promise<number> {
  const high = ephemeralStart();
  for (let i = 0; i < 100; i++) {
    const port = LOW + Math.floor(Math.random() * (high - LOW));
    if (await canBind(port)) return port;
  }
  throw new Error(`testkit: no free port found in ${LOW}..${high - 1} after 100 tries`);
}

export async function freeAddr(): Promise<string> {
  return `127.0.0.1:${await freePort()}`;
}

/** Whether a server failed to start because its port was taken meanwhile (the message carries the child's output). */
export function isAddrInUse(err: unknown): boolean {
  return err instanceof Error && /EADDRINUSE|address already in use/i.test(err.message);
}
