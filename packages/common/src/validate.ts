// Field validation shared by every service: namespaces, ids, addresses, integers.
import { invalid } from './errors.js';

export const NAMESPACE_PATTERN = /^[A-Za-z0-9._:/-]{1,128}$/;

export function checkNamespace(ns: string, field = 'namespace'): string {
  if (typeof ns !== 'string' || ns.length === 0)
    throw invalid(field, 'expected 1..128 characters [A-Za-z0-9._:/-]', ns ?? '');
  if (ns.length > 128) throw invalid(field, `expected at most 128 characters, got ${ns.length}`);
  if (!NAMESPACE_PATTERN.test(ns)) throw invalid(field, 'expected only characters [A-Za-z0-9._:/-]', ns);
  return ns;
}

/** Identifiers chosen by callers (node ids, instance ids, request ids): 1..128 printable ASCII without spaces. */
export function checkId(id: string, field: string): string {
  if (typeof id !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(id))
    throw invalid(field, 'expected 1..128 printable characters without spaces', id ?? '');
  return id;
}

export interface HostPort {
  host: string;
  port: number;
}

/** The longest host name DNS allows; an address is at most this plus "[", "]", ":" and five port digits. */
export const MAX_HOST_CHARS = 253;

/** "host:port" or "[v6]:port"; port 0 means "choose one". */
export function parseHostPort(addr: string, field = 'addr'): HostPort {
  const maxChars = MAX_HOST_CHARS + 8;
  if (typeof addr === 'string' && addr.length > maxChars)
    throw invalid(field, `expected host:port of at most ${maxChars} characters`, addr);
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(addr ?? '');
  const host = m?.[1] ?? m?.[2];
  const port = m ? Number(m[3]) : NaN;
  if (!m || !host || port > 65535) throw invalid(field, 'expected host:port', addr);
  return { host, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function checkUint(value: number, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > max)
    throw invalid(field, `expected an integer 0..${max}`, value);
  return value;
}
