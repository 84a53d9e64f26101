/**
 * A throwaway test PKI made with `openssl` in a temporary folder: a CA and one leaf for the `*.test`
 * names and 127.0.0.1. Nothing is written to the repository; the folder is removed at once.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
  /** Path of a file holding caCert, for command-line clients; removed by `cleanup`. */
  readonly caFile: string;
  cleanup(): void;
}

export function makeTestPki(names: readonly string[] = ['allowed.test', 'blocked.test', 'search.test', 'plain.test', 'localhost']): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-pki-'));
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  try {
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
      '-days', '2', '-subj', '/CN=safespot test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=allowed.test']);
    const san = [...names.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',');
    writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'ext.cnf']);
    const caCert = readFileSync(join(dir, 'ca.pem'), 'utf8');
    const cert = readFileSync(join(dir, 'leaf.pem'), 'utf8');
    const key = readFileSync(join(dir, 'leaf.key'), 'utf8');
    rmSync(dir, { recursive: true, force: true });
    const caDir = mkdtempSync(join(tmpdir(), 'safespot-ca-'));
    const caFile = join(caDir, 'ca.pem');
    writeFileSync(caFile, caCert);
    return { caCert, cert, key, caFile, cleanup: () => rmSync(caDir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
