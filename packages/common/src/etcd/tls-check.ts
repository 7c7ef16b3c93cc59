// A start-time check of TLS to etcd. gRPC hides why a TLS connection failed behind UNAVAILABLE and retries forever,
// so a wrong --etcd-ca or a client certificate etcd refuses would look like an etcd that never answers. This makes
// one TLS connection per endpoint with the same credentials, sends the HTTP/2 preface and waits for etcd's first
// bytes, which come only after both sides accepted the handshake (with TLS 1.3 the client's certificate is judged
// after the client thinks the handshake is done: etcd's verdict is its answer or an alert). A certificate problem
// becomes CONFIG_INVALID naming the flag to fix and the endpoint; an endpoint that does not answer is not a
// configuration problem (etcd may start later) and is only reported back.
import { connect as tlsConnect, createSecureContext } from 'node:tls';
import { KvError } from '../errors.js';
import { parseHostPort } from '../validate.js';
import { etcdEndpointHost } from '../etcd-tls-flags.js';
import type { EtcdTls } from '../etcd-tls.js';

/** Errors of the network, not of TLS (as are all with a syscall): the endpoint may come up later. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

type Outcome = { ok: true } | { unreachable: string } | { problem: string };

/**
 * Checks TLS to every endpoint, each bounded by `timeoutMs`. Throws CONFIG_INVALID on the first certificate or
 * protocol problem; resolves with the endpoints that did not answer ("host:port: why").
 */
export async function checkEtcdTls(
  endpoints: readonly string[],
  tls: EtcdTls,
  opts: { timeoutMs?: number; field?: string } = {},
): Promise<string[]> {
  const field = opts.field ?? 'etcd-endpoints';
  const hosts = endpoints.map((e) => etcdEndpointHost(e, true, field));
  try {
    createSecureContext({ ca: tls.rootCertificate, cert: tls.certChain, key: tls.privateKey });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const flag = tls.certChain ? 'etcd-cert' : 'etcd-ca';
    throw new KvError('CONFIG_INVALID', `${flag}: unusable TLS files: ${e.message} (${e.code})`, { cause: err });
  }
  const outcomes = await Promise.all(hosts.map((h) => probe(h, tls, opts.timeoutMs ?? 3000, field)));
  const unreachable: string[] = [];
  outcomes.forEach((o, i) => {
    if ('problem' in o) throw new KvError('CONFIG_INVALID', o.problem.replace('%s', hosts[i]!));
    if ('unreachable' in o) unreachable.push(`${hosts[i]}: ${o.unreachable}`);
  });
  return unreachable;
}

/** The HTTP/2 client preface and an empty SETTINGS frame: etcd answers them only over an accepted handshake. */
const H2_PREFACE = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
]);

function probe(hostPort: string, tls: EtcdTls, timeoutMs: number, field: string): Promise<Outcome> {
  const { host, port } = parseHostPort(hostPort);
  return new Promise((resolve) => {
    const socket = tlsConnect(
      { host, port, ca: tls.rootCertificate, cert: tls.certChain, key: tls.privateKey, ALPNProtocols: ['h2'] },
      () => socket.write(H2_PREFACE),
    );
    const timer = setTimeout(() => done({ unreachable: `no TLS handshake within ${timeoutMs} ms` }), timeoutMs);
    let connected = false; // the TCP connection was accepted
    socket.once('connect', () => (connected = true));
    socket.once('data', () => done({ ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) => done(classify(err, field, connected)));
    // accepted, then closed on the TLS hello: a plaintext etcd does that with a reset or a plain FIN, as it happens
    socket.once('close', () =>
      done(
        connected
          ? {
              problem: `${field}: etcd at %s closed the connection on the TLS hello (an http:// endpoint?): no TLS answer`,
            }
          : { unreachable: 'connection closed before the TLS handshake ended' },
      ),
    );
    function done(outcome: Outcome) {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(outcome);
    }
  });
}

/** Which flag fixes the failure, in a message with %s for the endpoint; `connected`: TCP had accepted. */
function classify(err: NodeJS.ErrnoException, field: string, connected: boolean): Outcome {
  const code = err.code ?? '';
  // OpenSSL's errors carry a one-line reason ("sslv3 alert bad certificate") beside a multi-line message
  const why = `${(err as { reason?: string }).reason ?? err.message} (${code})`;
  // accepted, then hung up on the TLS hello without an alert: what a plaintext etcd does. The reset reaches us
  // through TLS (no syscall) or through the socket's read, whichever comes first
  if (code === 'ECONNRESET' && (connected || err.syscall === undefined))
    return { problem: `${field}: etcd at %s closed the connection on the TLS hello (an http:// endpoint?): ${why}` };
  if (UNREACHABLE.has(code) || err.syscall !== undefined) return { unreachable: why };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return { problem: `${field}: etcd's certificate does not name %s: ${why}` };
  if (/ALERT_(BAD_CERTIFICATE|CERTIFICATE_|UNKNOWN_CA|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)/.test(code))
    return {
      problem: `etcd-cert: etcd at %s refused this process's client certificate (is it signed by the CA etcd trusts, and given with --etcd-cert/--etcd-key?): ${why}`,
    };
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG')
    return { problem: `${field}: etcd at %s does not speak TLS (an http:// endpoint?): ${why}` };
  // OpenSSL's verification results (SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...) have no ERR_
  if (!code.startsWith('ERR_'))
    return { problem: `etcd-ca: etcd's certificate at %s is not signed by the CA in --etcd-ca: ${why}` };
  return { problem: `${field}: TLS to etcd at %s failed: ${why}` };
}
