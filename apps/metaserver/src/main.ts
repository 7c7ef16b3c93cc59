// kvfabric-metaserver: parse config, build the app, run until SIGTERM/SIGINT, exit with a code.
import { toKvError, usage } from '@kvfabric/common';
import { createLogger, exitOnSignals } from '@kvfabric/common/observability';
import { loadServerSecurity, readEtcdTls } from '@kvfabric/common/rpc';
import { METASERVER_FLAGS, SUMMARY, loadConfig } from './config.js';
import { MetaserverApp } from './app.js';

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = loadConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`kvfabric-metaserver: ${toKvError(err).message}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(usage('kvfabric-metaserver', SUMMARY, METASERVER_FLAGS) + '\n');
    return 0;
  }
  const logger = createLogger('kvfabric-metaserver', parsed.config.logLevel);
  let app: MetaserverApp;
  try {
    const security = loadServerSecurity(parsed.config, 'metaserver');
    if (!security.tls && parsed.config.insecure)
      logger.warn({ addr: parsed.config.addr }, '--insecure: plaintext gRPC; anyone who reaches the port is trusted');
    if (parsed.insecureEtcd.length > 0)
      logger.warn(
        { etcd: parsed.insecureEtcd },
        '--insecure: plaintext to etcd across the network; whoever sits on the path can rewrite the leader key',
      );
    const etcdTls = readEtcdTls(parsed.config);
    app = new MetaserverApp({ config: parsed.config, logger, security, etcdTls });
    await app.start();
  } catch (err) {
    const e = toKvError(err);
    logger.fatal({ err: e }, 'start failed');
    process.stderr.write(`kvfabric-metaserver: ${e.message}\n`);
    return e.code === 'CONFIG_INVALID' ? 2 : 1;
  }
  exitOnSignals(app, logger);
  return -1; // keep running
}

const code = await main();
if (code >= 0) process.exit(code);
