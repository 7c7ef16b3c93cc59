// The node's two local sockets for engines: the Engine gRPC socket (--engine-socket) and beside it the region
// handover socket (<engine-socket>.regions). Each is bound inside a fresh private directory (0700) next to its
// final path, given its mode (--engine-socket-mode) and group (--engine-socket-group), and only then renamed into
// place: no engine can connect while a socket still has the permissions the umask gave it.
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { KvError } from '@kvfabric/common';

export interface SocketPermissions {
  mode: number;
  /** Group id to own the sockets; undefined leaves the node's group. */
  gid: number | undefined;
}

/** --engine-socket-mode and --engine-socket-group as numbers; a group name is looked up in `groupFile`. */
export function socketPermissions(
  mode: string,
  group: string | undefined,
  groupFile = '/etc/group',
): SocketPermissions {
  return { mode: parseInt(mode, 8), gid: group === undefined ? undefined : groupId(group, groupFile) };
}

function groupId(group: string, groupFile: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch (err) {
    throw new KvError('CONFIG_INVALID', `--engine-socket-group: cannot read ${groupFile}: ${(err as Error).message}`);
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new KvError('CONFIG_INVALID', `--engine-socket-group: no group ${JSON.stringify(group)} in ${groupFile}`);
}

/**
 * Runs `bind(tmpPath)` to create a unix socket at a private temporary path, applies `perms`, and renames it to
 * `path` (replacing a stale socket a killed node left). Resolves what `bind` resolved.
 */
export async function bindPrivately<T>(
  path: string,
  perms: SocketPermissions,
  bind: (tmpPath: string) => Promise<T> | T,
): Promise<T> {
  mkdirSync(dirname(path), { recursive: true });
  const dir = mkdtempSync(join(dirname(path), '.b')); // short: unix socket paths are limited to 107 bytes
  const tmp = join(dir, 's');
  try {
    const bound = await bind(tmp);
    try {
      chmodSync(tmp, perms.mode);
      if (perms.gid !== undefined) chownSync(tmp, -1, perms.gid);
      renameSync(tmp, path);
    } catch (err) {
      throw new KvError('CONFIG_INVALID', `--engine-socket ${path}: ${(err as Error).message}`, { cause: err });
    }
    return bound;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
