/**
 * The PAC file through the real `serve`: public (no token), names the forward listener's real port
 * at the address the device used, and sends Internet hosts through the proxy with no DIRECT fallback.
 * Both compositions: one process, and the primary of `workers: 2`.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_DEMO_DIR as DEMO, serve } from '../helpers/appliance.js';

for (const workers of [1, 2]) {
  t.test(`GET /proxy.pac and /wpad.dat (workers: ${workers})`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'safespot-pac-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'token'), 'pac-test-token-long-enough\n');
    const config = join(dir, 'config.yaml');
    writeFileSync(config, [
      'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
      `admin: { host: 127.0.0.1, port: 0, tokenFile: ${join(dir, 'token')} }`,
      `lists: [{ id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }]`,
      `journal: { path: ${join(dir, 'journal.db')} }`,
      `state: { dir: ${join(dir, 'state')} }`,
      `workers: ${workers}`,
      '',
    ].join('\n'));
    const app = await serve(config);
    t.teardown(() => void app.child.kill('SIGKILL'));
    t.ok(app.forward > 0, `forward listener on port ${app.forward}`);

    for (const path of ['/proxy.pac', '/wpad.dat']) {
      const res = await fetch(`http://127.0.0.1:${app.admin}${path}`);
      const body = await res.text();
      t.equal(res.status, 200, `${path} needs no token`);
      t.equal(res.headers.get('content-type'), 'application/x-ns-proxy-autoconfig');
      t.equal(res.headers.get('cache-control'), 'no-store', `${path} is never cached: its body depends on Host`);
      t.equal(res.headers.get('vary'), 'Host');
      t.match(body, `return "PROXY 127.0.0.1:${app.forward}";`, `${path} names the real forward port`);
      t.notMatch(body, /PROXY [^"]*;\s*DIRECT/, 'no DIRECT fallback');
    }
    // fetch() sets Host itself; node:http sends ours as given. The forward listener is bound to
    // 127.0.0.1, so that address is what the PAC names, whatever the Host header says.
    for (const host of ['x"; return "DIRECT', 'attacker.test:3128']) {
      const hostile = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: app.admin, path: '/proxy.pac', headers: { host } }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
      t.equal(hostile.status, 200, `Host ${host}: a PAC`);
      t.match(hostile.body, `return "PROXY 127.0.0.1:${app.forward}";`, `Host ${host}: naming the listener's own address`);
      t.notMatch(hostile.body, /attacker|x"/, `Host ${host}: nothing of the Host header in it`);
    }
    const metrics = await fetch(`http://127.0.0.1:${app.admin}/metrics`);
    t.equal(metrics.status, 401, 'the other admin routes still need the token');
    app.child.kill('SIGTERM');
    t.equal(await app.exited, 0);
  });
}
