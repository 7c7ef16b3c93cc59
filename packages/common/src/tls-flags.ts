// The flags that turn on mutual TLS, shared by every process (pure: reading the files is @kvfabric/common/rpc's job),
// and the rule for servers without them: plaintext listens on loopback only unless the operator says --insecure.
import { KvError } from './errors.js';
import type { FlagSpecs } from './config.js';
import { parseHostPort } from './validate.js';

export const TLS_FLAGS = {
  'tls-cert': {
    kind: 'string',
    description:
      'certificate (PEM) this process presents, naming it as URI kvfabric://ROLE/NAME; with --tls-key and --tls-ca turns on mutual TLS',
  },
  'tls-key': { kind: 'string', description: 'private key (PEM) of --tls-cert' },
  'tls-ca': {
    kind: 'string',
    description: 'CA certificates (PEM) that sign every kvfabric certificate; peers must present one they sign',
  },
} as const satisfies FlagSpecs;

export const INSECURE_FLAG = {
  insecure: {
    kind: 'bool',
    description:
      'without TLS flags, listen on non-loopback addresses anyway: whoever reaches the port is trusted (logged at start)',
    default: false,
  },
} as const satisfies FlagSpecs;

export interface TlsPaths {
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsCa?: string | undefined;
}

/** True when all three TLS flags are given; throws CONFIG_INVALID naming the missing ones when only some are. */
export function tlsRequested(paths: TlsPaths): boolean {
  const given = { 'tls-cert': paths.tlsCert, 'tls-key': paths.tlsKey, 'tls-ca': paths.tlsCa };
  const missing = Object.entries(given).filter(([, v]) => v === undefined || v === '');
  if (missing.length === 3) return false;
  if (missing.length > 0) {
    throw new KvError(
      'CONFIG_INVALID',
      `${missing.map(([k]) => k).join(', ')}: required with ${Object.keys(given)
        .filter((k) => !missing.some(([m]) => m === k))
        .join(', ')} (mutual TLS needs a certificate, its key and the CA)`,
    );
  }
  return true;
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Without TLS a server may listen only on loopback (or a unix socket) unless `insecure`: a plaintext server on a
 * network would trust anyone who can reach it.
 */
export function checkPlaintextListen(addr: string, flag: string, insecure: boolean): void {
  if (addr.startsWith('unix:')) return;
  checkPlaintextHop(addr, flag, insecure, {
    remedy: 'give --tls-cert, --tls-key and --tls-ca (mutual TLS)',
    anyway: 'serve plaintext to the network anyway',
  });
}

/**
 * The loopback rule for every plaintext hop, listened on or dialled: `addr` (host:port) must be loopback unless
 * `insecure`, because plaintext across a network trusts whoever can reach it or sits on the path. `remedy` says how
 * to turn TLS on for this hop, `anyway` what --insecure would do instead.
 */
export function checkPlaintextHop(
  addr: string,
  flag: string,
  insecure: boolean,
  words: { remedy: string; anyway: string },
): void {
  if (insecure) return;
  const { host } = parseHostPort(addr, flag);
  if (isLoopbackHost(host)) return;
  throw new KvError(
    'CONFIG_INVALID',
    `${flag}: ${addr} is not a loopback address; ${words.remedy}, or --insecure to ${words.anyway}`,
  );
}
