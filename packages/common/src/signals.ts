// Tiny main.ts helper: run an app until SIGTERM/SIGINT, drain it, exit with a code.
import type { Logger } from './logger.js';

export interface Runnable {
  stop(): Promise<void>;
}

/** Stops `app` on the first SIGTERM or SIGINT and exits 0 (1 if stopping failed); a second signal forces exit. */
export function exitOnSignals(app: Runnable, logger: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'draining');
    app.stop().then(
      () => {
        logger.info('stopped');
        logger.flush?.();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
