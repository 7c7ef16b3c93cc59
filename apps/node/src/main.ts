// kvfabric-node: parse config, build the app, run until SIGTERM/SIGINT (unregister, exit 0).
import { toKvError, usage } from '@kvfabric/common';
import { createLogger, exitOnSignals } from '@kvfabric/common/observability';
import { loadServerSecurity } from '@kvfabric/common/rpc';
import { NODE_FLAGS, parseNodeConfig } from './config.js';
import { NodeApp } from './app.js';

const SUMMARY = 'The kvfabric cache node: engines save KV blocks into its pool and load them back.';

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseNodeConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`kvfabric-node: ${toKvError(err).message}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(usage('kvfabric-node', SUMMARY, NODE_FLAGS) + '\n');
    return 0;
  }
  const logger = createLogger('kvfabric-node', parsed.config.logLevel);
  let app: NodeApp;
  try {
    const security = loadServerSecurity(parsed.config, 'node');
    if (!security.tls && parsed.config.insecure)
      logger.warn({ addr: parsed.config.addr }, '--insecure: plaintext peer gRPC; anyone who reaches it is trusted');
    app = await NodeApp.start({ config: parsed.config, logger, security });
  } catch (err) {
    const e = toKvError(err);
    logger.fatal({ err: e }, 'start failed');
    process.stderr.write(`kvfabric-node: ${e.message}\n`);
    return e.code === 'CONFIG_INVALID' || e.code === 'INVALID_ARGUMENT' ? 2 : 1;
  }
  exitOnSignals(app, logger);
  return -1;
}

const code = await main();
if (code >= 0) process.exit(code);
