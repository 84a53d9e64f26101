import t from 'tap';
import { runInNewContext } from 'node:vm';
import { pacFile, pacProxyAddress } from '../../appliance/admin/pac.js';

/** Evaluate the PAC as a browser would, with the standard helper functions (IP literals only). */
function findProxy(pac: string, host: string): string {
  const toInt = (ip: string): number => ip.split('.').reduce((a, p) => (a << 8) + Number(p), 0) >>> 0;
  const sandbox = {
    isPlainHostName: (h: string) => !h.includes('.'),
    isInNet: (h: string, net: string, mask: string) => ((toInt(h) & toInt(mask)) >>> 0) === ((toInt(net) & toInt(mask)) >>> 0),
    result: '',
  };
  runInNewContext(`${pac}\nresult = FindProxyForURL("http://" + ${JSON.stringify(host)} + "/", ${JSON.stringify(host)});`, sandbox);
  return sandbox.result;
}

t.test('the PAC sends every Internet host through the proxy, with no DIRECT fallback', async (t) => {
  const pac = pacFile('10.0.0.1:3128');
  const table: Array<[string, string]> = [
    ['www.example.test', 'PROXY 10.0.0.1:3128'],
    ['blocked.test', 'PROXY 10.0.0.1:3128'],
    ['93.184.216.34', 'PROXY 10.0.0.1:3128'],
    ['172.32.0.1', 'PROXY 10.0.0.1:3128'],
    ['printer', 'DIRECT'],
    ['localhost', 'DIRECT'],
    ['10.1.2.3', 'DIRECT'],
    ['172.16.5.5', 'DIRECT'],
    ['192.168.1.1', 'DIRECT'],
    ['127.0.0.1', 'DIRECT'],
  ];
  for (const [host, want] of table) t.equal(findProxy(pac, host), want, host);
  t.notMatch(pac, /PROXY [^"]*; DIRECT/, 'no fallback to DIRECT');
});

t.test('the advertised proxy address', async (t) => {
  t.equal(pacProxyAddress(undefined, 'wifi.venue.test:9090', 3128), 'wifi.venue.test:3128', 'the host the device used, the forward port');
  t.equal(pacProxyAddress(undefined, '[fd00::1]:9090', 3128), '[fd00::1]:3128');
  t.equal(pacProxyAddress('proxy.venue.test:8080', 'x:1', 3128), 'proxy.venue.test:8080', 'an explicit setting wins');
  t.equal(pacProxyAddress(undefined, undefined, 3128), null);
  t.equal(pacProxyAddress(undefined, 'evil"; return "DIRECT', 3128), null, 'a hostile Host header is refused, never written into the PAC');
  // A forward listener bound to one address: that address, whatever Host the request names.
  t.equal(pacProxyAddress(undefined, 'attacker.test:80', 3128, '192.168.1.1'), '192.168.1.1:3128', 'the listener\'s own address, not the Host');
  t.equal(pacProxyAddress(undefined, 'attacker.test', 3128, 'fd00::1'), '[fd00::1]:3128', 'an IPv6 listener address, bracketed');
  t.equal(pacProxyAddress(undefined, 'attacker.test', 3128, 'proxy.venue.test'), 'proxy.venue.test:3128');
  t.equal(pacProxyAddress('proxy.venue.test:8080', 'x', 3128, '192.168.1.1'), 'proxy.venue.test:8080', 'an explicit setting still wins');
  // On every address (0.0.0.0, ::): only the Host the device used can say which address it reached.
  for (const any of ['0.0.0.0', '::']) t.equal(pacProxyAddress(undefined, 'wifi.venue.test', 3128, any), 'wifi.venue.test:3128', `${any}: the Host header`);
});
