// Reads the files named by the etcd TLS flags (etcd-tls-flags.ts) into the credentials etcd3 takes (its
// `credentials` option: grpc-js createSsl with etcd's CA, and the client certificate when etcd checks one).
import { etcdTlsRequested, type EtcdTlsPaths } from './etcd-tls-flags.js';
import { readFlagFile } from './rpc-tls.js';

/** etcd3's `credentials` shape. */
export interface EtcdTls {
  rootCertificate: Buffer;
  privateKey?: Buffer;
  certChain?: Buffer;
}

/** The etcd credentials, or undefined when --etcd-ca is not given; errors name the flag and the file. */
export function readEtcdTls(paths: EtcdTlsPaths): EtcdTls | undefined {
  if (!etcdTlsRequested(paths)) return undefined;
  const rootCertificate = readFlagFile('etcd-ca', paths.etcdCa!);
  if (paths.etcdCert === undefined || paths.etcdCert === '') return { rootCertificate };
  return {
    rootCertificate,
    certChain: readFlagFile('etcd-cert', paths.etcdCert),
    privateKey: readFlagFile('etcd-key', paths.etcdKey!),
  };
}
