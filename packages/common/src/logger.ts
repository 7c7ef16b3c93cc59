// pino JSON logs. One logger is built at start-up and passed down by constructor; modules take child loggers
// with fields (`peer`, `namespace`, `grant`).
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function createLogger(name: string, level: LevelWithSilent | string = 'info'): Logger {
  return pino({
    name,
    level,
    base: { pid: process.pid, service: name },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** A logger that drops everything, for unit tests of pure cores. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
