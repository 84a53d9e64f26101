/**
 * SafeSearch through the DNS listener (issue 18, point 6), end to end: a real `safespot serve` with
 * listeners.dns, a profile that enforces SafeSearch for one client address, a recording loopback
 * upstream, and dig as the client (UDP and TCP, from two source addresses). For the profile, a
 * search name of policy/safe-search.ts gets a CNAME to the provider's enforced front end followed
 * by the front end's own addresses, and the search name itself is never asked upstream; another
 * client gets the search name's own answer. The addresses are made-up test records, not the
 * providers' real ones.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { serve, tempConfig } from '../helpers/appliance.js';
import { rd, startTestDns } from '../helpers/dns-upstream.js';

const run = promisify(execFile);

interface Rr { name: string; ttl: number; type: string; data: string }

/** dig's answer section as records (name without the final dot). */
async function dig(port: number, from: string, name: string, type: string, extra: string[] = []): Promise<{ status: string; answers: Rr[] }> {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), '-b', from, name, type, '+tries=1', '+time=3', '+nocookie', '+noall', '+comments', '+answer', ...extra]);
  const answers: Rr[] = [];
  for (const line of stdout.split('\n')) {
    if (line === '' || line.startsWith(';')) continue;
    const [owner, ttl, , rtype, ...data] = line.split(/\s+/);
    answers.push({ name: owner!.replace(/\.$/, ''), ttl: Number(ttl), type: rtype!, data: data.join(' ').replace(/\.$/, '') });
  }
  return { status: /status: (\w+)/.exec(stdout)?.[1] ?? 'none', answers };
}

/** Owner names compared without case: the owner points at the question as the client wrote it (0x20). */
const strip = (rrs: Rr[]): string[] => rrs.map((r) => `${r.name.toLowerCase()} ${r.type} ${r.data}`);

t.test('SafeSearch by DNS: CNAME to the enforced front end plus its addresses, for the profile only', async (t) => {
  const have = await run('sh', ['-c', 'command -v dig']).then(() => true, () => false);
  if (!have) {
    t.fail('dig missing (test/setup-system.sh installs bind9-dnsutils)');
    return;
  }
  const upstream = await startTestDns([
    { name: 'forcesafesearch.google.com', type: 1, rdata: rd.a('192.0.2.120') },
    { name: 'forcesafesearch.google.com', type: 28, rdata: [0x20, 0x01, 0x0d, 0xb8, ...Array<number>(11).fill(0), 0x20] },
    { name: 'strict.bing.com', type: 1, rdata: rd.a('192.0.2.121') },
    { name: 'safe.duckduckgo.com', type: 1, rdata: rd.a('192.0.2.122') },
    { name: 'restrictmoderate.youtube.com', type: 1, rdata: rd.a('192.0.2.123') },
    { name: 'www.google.com', type: 1, rdata: rd.a('192.0.2.200') },
    { name: 'www.google.de', type: 1, rdata: rd.a('192.0.2.201') },
    { name: 'mail.google.com', type: 1, rdata: rd.a('192.0.2.202') },
  ]);
  t.teardown(() => upstream.close());
  const { config } = tempConfig(t, 'dns-safesearch', [
    'listeners: { dns: { host: 127.0.0.1, port: 0 } }',
    'admin: null',
    `upstream: { dnsServers: ["127.0.0.1:${upstream.port}"] }`,
    'clients: [127.0.0.0/8]',
    'dns: { blockTtl: 45s }',
    'profiles: [{ name: kids, clients: [127.0.0.2/32], safeSearch: true }]',
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const port = app.ports.dns!;

  const cases = [
    { q: 'www.google.com', front: 'forcesafesearch.google.com', addr: '192.0.2.120' },
    { q: 'www.google.de', front: 'forcesafesearch.google.com', addr: '192.0.2.120' },
    { q: 'WWW.Bing.com', front: 'strict.bing.com', addr: '192.0.2.121' },
    { q: 'duckduckgo.com', front: 'safe.duckduckgo.com', addr: '192.0.2.122' },
    { q: 'www.youtube.com', front: 'restrictmoderate.youtube.com', addr: '192.0.2.123' },
  ];
  for (const c of cases) {
    for (const transport of ['udp', 'tcp'] as const) {
      const r = await dig(port, '127.0.0.2', c.q, 'A', transport === 'tcp' ? ['+tcp'] : []);
      t.equal(r.status, 'NOERROR', `${c.q} ${transport}: NOERROR`);
      t.same(strip(r.answers), [`${c.q.toLowerCase()} CNAME ${c.front}`, `${c.front} A ${c.addr}`], `${c.q} over ${transport}: the CNAME, then the front end's address`);
      t.equal(r.answers[0]?.ttl, 45, `${c.q}: the CNAME carries dns.blockTtl`);
    }
  }
  const v6 = await dig(port, '127.0.0.2', 'www.google.com', 'AAAA');
  t.same(strip(v6.answers), ['www.google.com CNAME forcesafesearch.google.com', 'forcesafesearch.google.com AAAA 2001:db8::20'], 'AAAA: the front end\'s IPv6 address');

  for (const c of cases) t.equal(upstream.asked(c.q.toLowerCase()), 0, `${c.q} was never asked upstream for the SafeSearch profile`);
  t.ok(upstream.asked('forcesafesearch.google.com') >= 1, 'the front end was looked up upstream');

  // Not a search front end: mail.google.com is answered as it is, also for the profile.
  const mail = await dig(port, '127.0.0.2', 'mail.google.com', 'A');
  t.same(strip(mail.answers), ['mail.google.com A 192.0.2.202'], 'other Google names are left alone');

  // Another client (the default profile, no SafeSearch): the search name's own answer, forwarded.
  const plain = await dig(port, '127.0.0.1', 'www.google.com', 'A');
  t.same(strip(plain.answers), ['www.google.com A 192.0.2.200'], 'the default profile gets no CNAME');
  t.equal(upstream.asked('www.google.com'), 1, 'and its question went upstream');
  // And the profile's answer did not leak into the other client's cache entry, nor the other way.
  const again = await dig(port, '127.0.0.2', 'www.google.com', 'A');
  t.same(strip(again.answers), ['www.google.com CNAME forcesafesearch.google.com', 'forcesafesearch.google.com A 192.0.2.120'], 'the profile still gets the CNAME after the other client\'s answer was cached');
});
