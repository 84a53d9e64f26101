/**
 * The common start of the proxy integration tests that carry TLS (CONNECT and the transparent TLS
 * listener): a recorder of process warnings, a generated test PKI, a real HTTPS upstream and a test
 * proxy (test hooks, recording observer, ClientHello timeout 400 ms), every teardown registered on
 * `t` right after its start.
 */
import { makeTestPki, type TestPki } from './pki.js';
import { startHttpsUpstream, type TestUpstream } from './upstream.js';
import { recordingObserver, testHooks, type RecordingObserver } from './hooks.js';
import { startTestProxy, testOptions } from './proxy-rig.js';

export interface TlsProxyRigOptions {
  /** The proxy's static hosts, given the HTTPS upstream's port. */
  readonly hosts: (httpsPort: number) => Record<string, string>;
  /** SafeSearch-style redirects of the test hooks (host → host to connect to). */
  readonly redirect?: Record<string, string>;
}

export interface TlsProxyRig {
  /** Process warnings seen since the rig started: listener leaks (an error listener added per step) show up here. */
  readonly warnings: readonly string[];
  readonly pki: TestPki;
  /** The static hosts the proxy was started with (for further proxies in the same file). */
  readonly hosts: Record<string, string>;
  /** The HTTPS upstream, serving the PKI's leaf. */
  readonly https: TestUpstream;
  readonly hooks: ReturnType<typeof testHooks>;
  readonly observer: RecordingObserver;
  readonly proxy: Awaited<ReturnType<typeof startTestProxy>>;
}

export async function startTlsProxyRig(t: { teardown(fn: () => unknown): void }, opts: TlsProxyRigOptions): Promise<TlsProxyRig> {
  const warnings: string[] = [];
  process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));
  const pki = makeTestPki();
  t.teardown(() => pki.cleanup());
  const https = await startHttpsUpstream(pki);
  t.teardown(() => https.close());
  const observer = recordingObserver();
  const hooks = opts.redirect === undefined ? testHooks() : testHooks({ redirect: opts.redirect });
  const hosts = opts.hosts(https.port);
  const proxy = await startTestProxy(t, testOptions(hosts, { tls: { clientHelloTimeout: 400 } }), hooks, observer);
  return { warnings, pki, hosts, https, hooks, observer, proxy };
}
