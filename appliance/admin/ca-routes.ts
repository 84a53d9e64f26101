/**
 * The CA download on the admin listener (`admin.serveCa: true`): `/ca.pem` (PEM), `/ca.der` (DER,
 * what Windows and Android install from a browser) and `/ca` (a short install page with the
 * fingerprint to compare). Public routes: the devices that install it have no admin token.
 *
 * Built from `caInstallInfo(ca)`, which holds the public certificate only: the key is not in reach
 * of this file.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CaInstallInfo } from '../../certs/index.js';
import type { Route } from './listener.js';

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function sender(type: string, body: Buffer, extra: Record<string, string> = {}) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return;
    }
    res.writeHead(200, {
      'content-type': type,
      'content-length': String(body.length),
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      ...extra,
    });
    res.end(method === 'HEAD' ? undefined : body);
  };
}

function installPage(info: CaInstallInfo): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Install the safespot certificate</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f6;color:#1d1d22}
main{max-width:40rem;margin:6vh auto;padding:2rem;background:#fff;border-radius:.75rem;box-shadow:0 1px 4px #0002}
code{word-break:break-all}li{margin:.3rem 0}
</style>
</head>
<body>
<main>
<h1>Install the safespot certificate</h1>
<p>This network filters secure (HTTPS) pages on managed devices. Those devices must trust the
certificate below. Install it only on a device your organisation manages, and only after checking
its fingerprint with the administrator.</p>
<p>Download: <a href="/ca.pem">safespot-ca.pem</a> (PEM) or <a href="/ca.der">safespot-ca.cer</a> (DER).</p>
<dl>
<dt>Subject</dt><dd><code>${escapeHtml(info.subject)}</code></dd>
<dt>SHA-256 fingerprint</dt><dd><code>${escapeHtml(info.sha256Fingerprint)}</code></dd>
<dt>Valid until</dt><dd>${escapeHtml(info.notAfter.toISOString())}</dd>
</dl>
<ul>
<li>Firefox: Settings, Privacy &amp; Security, Certificates, View Certificates, Authorities, Import; tick "identify websites".</li>
<li>Chrome or Chromium on Linux: <code>certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n safespot -i safespot-ca.pem</code></li>
<li>Debian or Ubuntu: copy to <code>/usr/local/share/ca-certificates/safespot.crt</code>, then run <code>update-ca-certificates</code>.</li>
<li>Windows: <code>certutil -addstore -f Root safespot-ca.cer</code>, or a group policy.</li>
<li>macOS: <code>sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain safespot-ca.pem</code></li>
<li>iOS and Android: push it through your device management (MDM).</li>
</ul>
</main>
</body>
</html>
`;
}

/** The three public routes for `startAdmin({ extraRoutes })`. */
export function caRoutes(info: CaInstallInfo): Record<string, Route> {
  const pem = Buffer.from(info.pem, 'utf8');
  const der = Buffer.from(info.der);
  const page = Buffer.from(installPage(info), 'utf8');
  return {
    '/ca.pem': { public: true, handler: sender('application/x-pem-file', pem, { 'content-disposition': 'attachment; filename="safespot-ca.pem"' }) },
    '/ca.der': { public: true, handler: sender('application/x-x509-ca-cert', der, { 'content-disposition': 'attachment; filename="safespot-ca.cer"' }) },
    '/ca': {
      public: true,
      handler: sender('text/html; charset=utf-8', page, { 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" }),
    },
  };
}
