// The `kvfabric` dispatcher: finds the command, binds flags (kebab-case, env fallback), runs it, prints its result.
// Exit codes: 0 ok, 1 server error, 2 bad arguments, 3 cannot connect to the metaserver.
import { KvError, echo, parseConfig, tlsRequested, toKvError, usage, type FlagSpecs } from '@kvfabric/common';
import type * as RpcModule from '@kvfabric/common/rpc';
import { checkEtcdSecurity, resolveMetaserverAddr } from '@kvfabric/client/address';
import type * as ClientModule from '@kvfabric/client/metaserver';
import { EXIT, GLOBAL_FLAGS, type AnyCommand, type GlobalConfig } from './command.js';
import { hash } from './commands/hash.js';
import { health } from './commands/health.js';
import { locate } from './commands/locate.js';
import { namespaces } from './commands/namespaces.js';
import { nodes } from './commands/nodes.js';
import { stats } from './commands/stats.js';

export const COMMANDS: readonly AnyCommand[] = [nodes, locate, stats, namespaces, health, hash];

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

const CANNOT_CONNECT = new Set(['METASERVER_UNAVAILABLE', 'NOT_LEADER', 'TRANSPORT_UNAVAILABLE']);

export function globalUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return (
    [
      'Usage: kvfabric <command> [flags]',
      '',
      'Inspect a kvfabric cluster through its metaserver.',
      '',
      'Commands:',
      ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
      '',
      usage('kvfabric <command>', 'Global flags (every command):', GLOBAL_FLAGS).split('\n').slice(4).join('\n'),
      '',
      'Exit codes: 0 ok, 1 server error, 2 bad arguments, 3 cannot connect.',
      "Run 'kvfabric <command> --help' for a command's flags.",
    ].join('\n') + '\n'
  );
}

/** Runs one invocation and returns its exit code. Never throws. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const at = commandIndex(argv);
  const name = at < 0 ? undefined : argv[at]!;
  if (name === undefined || name === 'help') {
    const asked = name === 'help' || argv.includes('--help') || argv.includes('-h');
    (asked ? io.stdout : io.stderr)(globalUsage());
    return asked ? EXIT.OK : EXIT.BAD_ARGUMENTS;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr(
      `kvfabric: unknown command "${name}" (have: ${COMMANDS.map((c) => c.name).join(', ')}); see kvfabric --help\n`,
    );
    return EXIT.BAD_ARGUMENTS;
  }
  const specs: FlagSpecs = { ...command.flags, ...GLOBAL_FLAGS };
  const rest = [...argv.slice(0, at), ...argv.slice(at + 1)];

  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(usage(`kvfabric ${command.name}`, command.summary, specs) + '\n');
    return EXIT.OK;
  }

  // 1. Arguments: every problem in one line, exit 2.
  let global: GlobalConfig;
  let args: unknown;
  try {
    const parsed = parseConfig(specs, rest, io.env);
    if (parsed.positionals.length > 0)
      throw new KvError('CONFIG_INVALID', `unexpected argument ${echo(parsed.positionals[0])}`);
    global = parsed.config as unknown as GlobalConfig;
    if (command.needsServer) {
      resolveMetaserverAddr(global.metaserverAddr, '--metaserver-addr');
      tlsRequested(global);
      // the CLI listens nowhere and dials only what its user names: the loopback rule (and --insecure) is the daemons'
      checkEtcdSecurity(global.metaserverAddr, global, true);
    }
    args = command.parse(parsed.config, io.env);
  } catch (err) {
    io.stderr(`kvfabric ${command.name}: ${oneLine(toKvError(err).message)} (see kvfabric ${command.name} --help)\n`);
    return EXIT.BAD_ARGUMENTS;
  }

  // 2. The call: server errors exit 1, connection failures exit 3 (unreadable TLS files are bad arguments: exit 2).
  let client: ClientModule.MetaserverClient | undefined;
  if (command.needsServer) {
    const [{ MetaserverClient }, { readTls, readEtcdTls }] = await Promise.all([metaserverClientModule(), rpcModule()]);
    let tls, etcdTls;
    try {
      tls = readTls(global);
      etcdTls = readEtcdTls(global);
    } catch (err) {
      io.stderr(`kvfabric ${command.name}: ${oneLine(toKvError(err).message)}\n`);
      return EXIT.BAD_ARGUMENTS;
    }
    client = new MetaserverClient(global.metaserverAddr, {
      deadlineMs: Math.round(global.timeoutSecs * 1000),
      tls,
      etcdTls,
    });
  }
  try {
    const result = await command.run(args, {
      client,
      global,
      warn: (m) => io.stderr(`kvfabric ${command.name}: warning: ${oneLine(m)}\n`),
    });
    if (global.output === 'json') io.stdout(JSON.stringify(command.printer.json(result), null, 2) + '\n');
    else io.stdout(command.printer.table(result));
    return command.printer.exitCode?.(result) ?? EXIT.OK;
  } catch (err) {
    const e = toKvError(err);
    if (CANNOT_CONNECT.has(e.code)) {
      io.stderr(`kvfabric ${command.name}: ${oneLine(e.message)}\n`);
      return EXIT.CANNOT_CONNECT;
    }
    io.stderr(`kvfabric ${command.name}: ${e.code}: ${oneLine(e.message)}\n`);
    return EXIT.SERVER_ERROR;
  } finally {
    client?.close();
  }
}

/**
 * Index of the command word: the first argument that is neither a flag nor a flag's value. Flags that take no
 * value (booleans, --help) are known from the specs of every command.
 */
function commandIndex(argv: readonly string[]): number {
  const bools = new Set<string>(['help', 'h']);
  for (const c of COMMANDS)
    for (const [flag, spec] of Object.entries(c.flags as FlagSpecs)) if (spec.kind === 'bool') bools.add(flag);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h') continue;
    if (!arg.startsWith('--')) return i;
    const name = arg.slice(2);
    if (name.includes('=') || bools.has(name) || (name.startsWith('no-') && bools.has(name.slice(3)))) continue;
    i++; // skips the flag's value
  }
  return -1;
}

/**
 * The metaserver client (gRPC, protobuf), loaded only by commands that talk to a server: `--help`, argument errors
 * and `kvfabric hash` start without it (addresses are checked by @kvfabric/client/address, which is pure).
 */
function metaserverClientModule(): Promise<typeof ClientModule> {
  return import('@kvfabric/client/metaserver');
}

/** Reads the TLS files (with the client, only for commands that talk to a server). */
function rpcModule(): Promise<typeof RpcModule> {
  return import('@kvfabric/common/rpc');
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
