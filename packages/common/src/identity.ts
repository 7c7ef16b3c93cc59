// Who is calling, as a certificate says it (pure: no TLS library here, only the subject alternative names).
// A kvfabric certificate names one identity, `URI:kvfabric://ROLE/NAME` (ROLE metaserver, node or client), and may
// limit it to namespaces with one `URI:kvfabric://namespace/NS` each; without any, the identity may use every
// namespace. An operator's policy file (`--namespaces`) can set the list per identity instead (see NamespacePolicy).
// `undefined` as an identity means the connection carried no certificate because the server runs without TLS
// (loopback, or `--insecure`): the operator chose to trust the network, and no check below refuses it.
import { KvError } from './errors.js';

export const ROLES = ['metaserver', 'node', 'client'] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  role: Role;
  name: string;
  /** The namespaces it may use; 'all' when its certificate names none. */
  namespaces: ReadonlySet<string> | 'all';
}

const NAME = /^[A-Za-z0-9._-]{1,128}$/;
const URI_PREFIX = 'kvfabric://';

export function identityUri(identity: Pick<Identity, 'role' | 'name'>): string {
  return `${URI_PREFIX}${identity.role}/${identity.name}`;
}

/** Reads the identity from a certificate's subjectAltName text ("URI:kvfabric://node/a, DNS:localhost, ..."). */
export function identityFromAltNames(altNames: string | undefined): Identity {
  const uris = (altNames ?? '')
    .split(/,\s*/)
    .filter((n) => n.startsWith(`URI:${URI_PREFIX}`))
    .map((n) => n.slice(`URI:${URI_PREFIX}`.length));
  const names = uris.filter((u) => !u.startsWith('namespace/'));
  if (names.length !== 1) {
    throw new KvError(
      'UNAUTHENTICATED',
      `certificate: expected exactly one subject alternative name ${URI_PREFIX}ROLE/NAME (ROLE ${ROLES.join(', ')}), ` +
        `found ${names.length}`,
    );
  }
  const [role, name, ...rest] = names[0]!.split('/');
  if (!(ROLES as readonly string[]).includes(role!) || !NAME.test(name ?? '') || rest.length > 0) {
    throw new KvError(
      'UNAUTHENTICATED',
      `certificate: ${URI_PREFIX}${names[0]!.slice(0, 160)} is not ${URI_PREFIX}ROLE/NAME with ROLE one of ` +
        `${ROLES.join(', ')} and NAME of letters, digits, . _ -`,
    );
  }
  const namespaces = uris.filter((u) => u.startsWith('namespace/')).map((u) => u.slice('namespace/'.length));
  return { role: role as Role, name: name!, namespaces: namespaces.length === 0 ? 'all' : new Set(namespaces) };
}

/**
 * Node ids are `NAME/RANDOM` when the node runs with a certificate: NAME from the certificate, RANDOM new for each
 * process (a restarted node is a new session whose pool starts empty). Only that certificate may act for them.
 */
export function nodeIdFor(identity: Identity, incarnation: string): string {
  return `${identity.name}/${incarnation}`;
}

/** Refuses unless identity may act as node `nodeId` (a node certificate whose NAME is the id's first part). */
export function authorizeNode(identity: Identity | undefined, nodeId: string, field = 'node_id'): void {
  if (identity === undefined) return;
  if (identity.role === 'node' && (nodeId === identity.name || nodeId.startsWith(`${identity.name}/`))) return;
  throw new KvError(
    'PERMISSION_DENIED',
    `${field}: ${JSON.stringify(nodeId.slice(0, 160))} does not belong to ${identityUri(identity)} ` +
      `(a node certificate kvfabric://node/NAME acts only for node ids NAME/...)`,
  );
}

/** Refuses unless identity is one of roles. */
export function authorizeRole(identity: Identity | undefined, roles: readonly Role[], what: string): void {
  if (identity === undefined || roles.includes(identity.role)) return;
  throw new KvError(
    'PERMISSION_DENIED',
    `${what} is for ${roles.join(' or ')} certificates, not ${identityUri(identity)}`,
  );
}

/** Refuses unless identity may use namespace `ns`. */
export function authorizeNamespace(identity: Identity | undefined, ns: string, field = 'namespace'): void {
  if (identity === undefined || identity.namespaces === 'all' || identity.namespaces.has(ns)) return;
  throw new KvError(
    'PERMISSION_DENIED',
    `${field}: ${identityUri(identity)} may not use namespace ${JSON.stringify(ns)} ` +
      `(allowed: ${[...identity.namespaces].join(', ')})`,
  );
}

/**
 * The operator's namespace policy: a JSON object from "ROLE/NAME" to the namespaces that identity may use (a list of
 * names, or "*" for all). An identity listed here gets exactly that list whatever its certificate says; one not
 * listed keeps its certificate's list.
 */
export class NamespacePolicy {
  private constructor(private readonly entries: ReadonlyMap<string, ReadonlySet<string> | 'all'>) {}

  static readonly EMPTY = new NamespacePolicy(new Map());

  /** Parses the policy file's text; errors name `source` and the entry. */
  static parse(text: string, source: string): NamespacePolicy {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new KvError('CONFIG_INVALID', `${source}: not JSON (${(err as Error).message.slice(0, 120)})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new KvError('CONFIG_INVALID', `${source}: expected an object {"ROLE/NAME": ["namespace", ...] | "*"}`);
    const entries = new Map<string, ReadonlySet<string> | 'all'>();
    for (const [key, list] of Object.entries(value)) {
      const [role, name, ...rest] = key.split('/');
      if (!(ROLES as readonly string[]).includes(role!) || !NAME.test(name ?? '') || rest.length > 0)
        throw new KvError('CONFIG_INVALID', `${source}: key ${JSON.stringify(key.slice(0, 160))}: expected ROLE/NAME`);
      if (list === '*') entries.set(key, 'all');
      else if (Array.isArray(list) && list.every((ns) => typeof ns === 'string' && ns.length > 0 && ns.length <= 128))
        entries.set(key, new Set(list as string[]));
      else throw new KvError('CONFIG_INVALID', `${source}: ${key}: expected a list of namespace names or "*"`);
    }
    return new NamespacePolicy(entries);
  }

  /** identity with the policy's namespaces applied. */
  apply(identity: Identity): Identity {
    const namespaces = this.entries.get(`${identity.role}/${identity.name}`);
    return namespaces === undefined ? identity : { ...identity, namespaces };
  }
}
