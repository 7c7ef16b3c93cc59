// The region handover protocol, shared by the node (region-handover.ts) and the engine side (fd-pass.ts).
// Documented for engines in other languages in apps/node/README.md ("Handing over a region").
//
//   engine -> node: one SOCK_SEQPACKET message, payload HANDOVER_REQUEST, exactly one descriptor (SCM_RIGHTS);
//                   or, for a command ring, payload RING_HANDOVER_REQUEST with two: the ring's memfd, an eventfd
//   node -> engine: one message, "OK <token>" or "ERR <CODE> <message>"; then the node closes the connection
//
// The token (32 lowercase hex characters) names the region in RegisterInstance (region.token), once, within
// HANDOVER_TOKEN_TTL_MS.

export const HANDOVER_REQUEST = 'kvfabric-region/1';
export const RING_HANDOVER_REQUEST = 'kvfabric-ring/1';
export const HANDOVER_TOKEN_TTL_MS = 60_000;
export const HANDOVER_TOKEN = /^[0-9a-f]{32}$/;

/** The handover socket beside an engine socket: `<engine socket>.regions`. */
export function handoverSocketPath(engineSocket: string): string {
  return `${engineSocket}.regions`;
}

export type HandoverReply = { ok: true; token: string } | { ok: false; code: string; message: string };

export function formatReply(reply: HandoverReply): Buffer {
  return Buffer.from(reply.ok ? `OK ${reply.token}` : `ERR ${reply.code} ${reply.message}`);
}

/** Parses a reply; a malformed one is reported as an INTERNAL error naming what came back (truncated). */
export function parseReply(raw: Buffer): HandoverReply {
  const text = raw.toString('utf8');
  const ok = /^OK ([0-9a-f]{32})$/.exec(text);
  if (ok) return { ok: true, token: ok[1]! };
  const err = /^ERR ([A-Z_]{1,40}) ([\s\S]*)$/.exec(text);
  if (err) return { ok: false, code: err[1]!, message: err[2]! };
  return {
    ok: false,
    code: 'INTERNAL',
    message: `region handover: unexpected reply ${JSON.stringify(text.slice(0, 64))}`,
  };
}
