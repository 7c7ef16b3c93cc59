// Mutual TLS for every gRPC hop between processes: reads the PEM files named by the TLS flags, builds grpc-js
// credentials, and tells a handler who called. Servers require a client certificate signed by the CA; clients check
// the server's certificate against the CA and then its kvfabric identity (the role, and for a peer node the name),
// not its host name: nodes and metaservers are dialled by addresses that come and go, identities do not.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { KvError } from './errors.js';
import { NamespacePolicy, identityFromAltNames, identityUri, type Identity, type Role } from './identity.js';
import { tlsRequested, type TlsPaths } from './tls-flags.js';

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  /** Who this process is, from its own certificate. */
  identity: Identity;
}

/** Reads the file a flag names; CONFIG_INVALID naming the flag, the file and why. */
export function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new KvError('CONFIG_INVALID', `${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`, {
      cause: err,
    });
  }
}

/** Reads the three TLS files (undefined when no TLS flag is given); errors name the flag and file. */
export function readTls(paths: TlsPaths): TlsMaterial | undefined {
  if (!tlsRequested(paths)) return undefined;
  const cert = readFlagFile('tls-cert', paths.tlsCert!);
  const key = readFlagFile('tls-key', paths.tlsKey!);
  const ca = readFlagFile('tls-ca', paths.tlsCa!);
  let identity: Identity;
  try {
    identity = identityFromAltNames(new X509Certificate(cert).subjectAltName);
  } catch (err) {
    throw new KvError('CONFIG_INVALID', `tls-cert: ${paths.tlsCert}: ${(err as Error).message}`, { cause: err });
  }
  return { cert, key, ca, identity };
}

/** Mutual TLS when material is given (clients must present a certificate the CA signed), else plaintext. */
export function serverCredentials(tls: TlsMaterial | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/** What a client expects the server's certificate to say: its role, and for a peer node its name. */
export interface ExpectedPeer {
  role: Role;
  name?: string;
}

/** Client credentials presenting this process's certificate and checking the server's identity. */
export function clientCredentials(tls: TlsMaterial | undefined, expect: ExpectedPeer): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.ca, tls.key, tls.cert, {
    checkServerIdentity: (_host, cert) => {
      try {
        const seen = identityFromAltNames(cert.subjectaltname);
        if (seen.role === expect.role && (expect.name === undefined || seen.name === expect.name)) return undefined;
        return new Error(
          `server certificate is ${identityUri(seen)}, expected ${expect.name ? identityUri({ role: expect.role, name: expect.name }) : `a ${expect.role}`}`,
        );
      } catch (err) {
        return err as Error;
      }
    },
  });
}

/**
 * Channel options to go with clientCredentials: with TLS the SNI server name is a fixed name, not the dialled
 * address (an IP address there is not allowed, and identities, not names, are what the client checks).
 */
export function tlsChannelOptions(tls: TlsMaterial | undefined): grpc.ChannelOptions {
  return tls ? { 'grpc.ssl_target_name_override': 'kvfabric' } : {};
}

/**
 * The identity of the caller of a server call: undefined on a plaintext server (no TLS: trusted by configuration).
 * On a TLS server the handshake already required a certificate signed by the CA; one without a kvfabric identity
 * is refused with UNAUTHENTICATED.
 */
export function callIdentity(call: {
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } | null;
}): Identity | undefined {
  const auth = call.getAuthContext();
  if (!auth || auth.transportSecurityType !== 'ssl') return undefined;
  const cert = auth.sslPeerCertificate;
  if (!cert || Object.keys(cert).length === 0)
    throw new KvError('UNAUTHENTICATED', 'the connection carries no client certificate');
  return identityFromAltNames(cert.subjectaltname);
}

/** A server's TLS material, namespace policy and the caller lookup its handlers use. */
export interface ServerSecurity {
  tls: TlsMaterial | undefined;
  /** The caller's identity with the namespace policy applied; undefined on a plaintext server. */
  identify(call: Parameters<typeof callIdentity>[0]): Identity | undefined;
}

/**
 * Reads the TLS files and the namespace policy file named by a server's flags; the server's own certificate must
 * carry `role` (a node presenting a metaserver certificate is a configuration mistake, caught at start).
 */
export function loadServerSecurity(config: TlsPaths & { namespaces?: string | undefined }, role: Role): ServerSecurity {
  const tls = readTls(config);
  if (tls && tls.identity.role !== role) {
    throw new KvError(
      'CONFIG_INVALID',
      `tls-cert: ${config.tlsCert} names ${identityUri(tls.identity)}; a ${role} needs a kvfabric://${role}/NAME certificate`,
    );
  }
  let policy = NamespacePolicy.EMPTY;
  if (config.namespaces !== undefined) {
    let text: string;
    try {
      text = readFileSync(config.namespaces, 'utf8');
    } catch (err) {
      throw new KvError(
        'CONFIG_INVALID',
        `namespaces: cannot read ${config.namespaces}: ${(err as NodeJS.ErrnoException).code}`,
        { cause: err },
      );
    }
    policy = NamespacePolicy.parse(text, `namespaces: ${config.namespaces}`);
  }
  return {
    tls,
    // A plaintext server has no certificate to read: every call's identity is undefined without asking grpc-js
    // (getAuthContext walks the HTTP/2 session's socket proxy on every call, about 1 % of a unary call's server CPU).
    identify: tls
      ? (call) => {
          const who = callIdentity(call);
          return who && policy.apply(who);
        }
      : () => undefined,
  };
}
