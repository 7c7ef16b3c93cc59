// What a command is: its flags, a parse step that validates them (errors → exit 2), a run step that talks to the
// metaserver through packages/client (errors → exit 1 or 3) and a printer for its result.
import { ETCD_TLS_FLAGS, TLS_FLAGS, type ConfigOf, type FlagSpecs } from '@kvfabric/common';
import { DEFAULT_METASERVER_ADDR } from '@kvfabric/client/address';
import type { MetaserverClient } from '@kvfabric/client/metaserver';

export const EXIT = { OK: 0, SERVER_ERROR: 1, BAD_ARGUMENTS: 2, CANNOT_CONNECT: 3 } as const;

export const GLOBAL_FLAGS = {
  'metaserver-addr': {
    kind: 'string',
    description:
      'metaserver gRPC address host:port, or etcd://host:port[,host:port...][/prefix] to find the HA leader through etcd',
    default: DEFAULT_METASERVER_ADDR,
  },
  output: { kind: 'enum', description: 'output format', choices: ['table', 'json'], default: 'table' },
  'timeout-secs': {
    kind: 'number',
    description: 'deadline of each call to the metaserver',
    default: 5,
    min: 0.001,
    max: 3600,
  },
  ...TLS_FLAGS,
  ...ETCD_TLS_FLAGS,
} as const satisfies FlagSpecs;

export type GlobalConfig = ConfigOf<typeof GLOBAL_FLAGS>;

/** Renders one result type both ways; `exitCode` lets a result (an unhealthy server) fail the command. */
export interface Printer<R> {
  table(result: R): string;
  json(result: R): unknown;
  exitCode?(result: R): number;
}

export interface RunContext {
  /** Undefined for commands that need no server. */
  client: MetaserverClient | undefined;
  global: GlobalConfig;
  /** A one-line warning on stderr (never on stdout, which stays parseable). */
  warn(message: string): void;
}

export interface Command<S extends FlagSpecs = FlagSpecs, A = unknown, R = unknown> {
  name: string;
  summary: string;
  flags: S;
  needsServer: boolean;
  /** Validates flags into arguments. Throws KvError (exit 2). Reads local files only. */
  parse(config: ConfigOf<S>, env: NodeJS.ProcessEnv): A;
  run(args: A, ctx: RunContext): Promise<R>;
  printer: Printer<R>;
}

/** Erases a command's own types so commands of different shapes fit in one list. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCommand = Command<FlagSpecs, any, any>;

export function defineCommand<S extends FlagSpecs, A, R>(command: Command<S, A, R>): AnyCommand {
  return command as unknown as AnyCommand;
}
