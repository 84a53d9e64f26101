/**
 * NODE_EXTRA_CA_CERTS under interception (issue 19), through the real `serve`: an upstream whose CA
 * is given only through that variable in serve's environment is verified and served (an operator
 * behind a TLS-inspecting egress); without the variable the same upstream gets the 502 page, so
 * the trust comes from it; a variable naming a missing or certificate-less file stops the start
 * with a clear error (exit 2).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ProxyAgent, request } from 'undici';
import { runCli, serve, tempConfig } from '../helpers/appliance.js';
import { makeTestPki } from '../helpers/pki.js';
import { startHttpsUpstream } from '../helpers/upstream.js';

async function setup(t: Test) {
  const pki = makeTestPki(['allowed.test']);
  t.teardown(() => pki.cleanup());
  const upstream = await startHttpsUpstream(pki);
  t.teardown(() => upstream.close());
  const { dir, config } = tempConfig(t, 'extra-ca', []);
  const caDir = join(dir, 'ca');
  const init = await runCli(['certs', 'init', '--dir', caDir]);
  t.equal(init.code, 0, init.stderr);
  writeFileSync(
    config,
    [
      'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
      `upstream: { hosts: { allowed.test: "127.0.0.1:${upstream.port}" } }`,
      // No upstreamCa: the test PKI is trusted through NODE_EXTRA_CA_CERTS or not at all.
      'intercept: { enabled: true }',
      `ca: { dir: ${caDir} }`,
      `journal: { path: ${join(dir, 'journal.db')} }`,
      `state: { dir: ${join(dir, 'state')} }`,
      '',
    ].join('\n'),
  );
  return { pki, dir, config, caPem: readFileSync(join(caDir, 'ca.crt'), 'utf8') };
}

async function getThrough(forward: number, caPem: string, url: string): Promise<{ status: number; body: string }> {
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${forward}`, requestTls: { ca: caPem } });
  try {
    const r = await request(url, { dispatcher: agent });
    return { status: r.statusCode, body: await r.body.text() };
  } finally {
    await agent.close();
  }
}

t.test('an upstream CA given only in NODE_EXTRA_CA_CERTS is trusted; without it the upstream is refused', async (t) => {
  const s = await setup(t);
  const trusted = await serve(s.config, { env: { NODE_EXTRA_CA_CERTS: s.pki.caFile } });
  t.teardown(() => void trusted.child.kill('SIGKILL'));
  const ok = await getThrough(trusted.forward, s.caPem, 'https://allowed.test/hello');
  t.equal(ok.status, 200, 'verified against the NODE_EXTRA_CA_CERTS root');
  t.equal(ok.body, 'hello from https\n', 'the upstream body through interception');
  trusted.child.kill('SIGTERM');
  await trusted.exited;

  // The control: same config, no variable. The upstream's CA is then unknown: 502, never content.
  const plain = await serve(s.config, { env: { NODE_EXTRA_CA_CERTS: '' } });
  t.teardown(() => void plain.child.kill('SIGKILL'));
  const refused = await getThrough(plain.forward, s.caPem, 'https://allowed.test/hello');
  t.equal(refused.status, 502, 'unknown CA without the variable');
  t.notMatch(refused.body, /hello from https/);
});

/** Why serve did not start with NODE_EXTRA_CA_CERTS=`file`; 'started' (and the child stopped) when it did. */
function startError(config: string, file: string): Promise<string> {
  return serve(config, { env: { NODE_EXTRA_CA_CERTS: file } }).then(
    (app) => {
      app.child.kill('SIGKILL');
      return 'started';
    },
    (err: Error) => err.message,
  );
}

t.test('NODE_EXTRA_CA_CERTS naming a missing or certificate-less file stops the start, naming the variable', async (t) => {
  const s = await setup(t);
  const missing = join(s.dir, 'no-such-ca.pem');
  t.match(await startError(s.config, missing), /serve exited 2:[\s\S]*ERR_CONFIG_READ: cannot read NODE_EXTRA_CA_CERTS \S*no-such-ca\.pem/);
  const empty = join(s.dir, 'empty.pem');
  writeFileSync(empty, 'not a certificate\n');
  t.match(await startError(s.config, empty), /serve exited 2:[\s\S]*ERR_CONFIG_INVALID: NODE_EXTRA_CA_CERTS \S*empty\.pem holds no PEM certificate/);
});
