// kvfabric-node: parse config, build the app, run until SIGTERM/SIGINT (unregister, exit 0).
import { toKvError, usage } from '@kvfabric/common';
import { createLogger, exitOnSignals } from '@kvfabric/common/observability';
import { loadServerSecurity, readEtcdTls } from '@kvfabric/common/rpc';
import { parseEtcdAddr } from '@kvfabric/client';
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
    if (parsed.insecureEtcd.length > 0)
      logger.warn(
        { etcd: parsed.insecureEtcd },
        '--insecure: plaintext to etcd across the network; whoever sits on the path can name another metaserver',
      );
    const etcdTls = readEtcdTls(parsed.config);
    const etcd = parsed.config.metaserverAddr && parseEtcdAddr(parsed.config.metaserverAddr);
    if (etcdTls && etcd) {
      // a certificate etcd refuses is a configuration error, not an etcd that never answers (as for the metaserver)
      const { checkEtcdTls } = await import('@kvfabric/common/etcd');
      const unreachable = await checkEtcdTls(etcd.endpoints, etcdTls, { field: 'metaserver-addr' });
      if (unreachable.length > 0)
        logger.warn({ etcd: unreachable }, 'etcd not reachable at start; following it anyway');
    }
    app = await NodeApp.start({ config: parsed.config, logger, security, etcdTls });
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
