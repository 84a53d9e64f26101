/**
 * What every page a guest may see shares: the strings of each language (locales/), the choice of
 * language from Accept-Language, HTML escaping, and one page shell with the same headers (no
 * caching, a CSP that allows nothing but inline style, no sniffing, no referrer). The block page
 * (block-page.ts) and the bad-certificate page (upstream-tls.ts) are both made with it.
 */
import { en } from './locales/en.js';
import { sq } from './locales/sq.js';
import type { BlockStrings } from './locales/strings.js';

export type { BlockStrings, CertProblem, UpstreamTlsStrings } from './locales/strings.js';


/** Every language with a strings file. Adding a language = one file under locales/ and one line here. */
export const LOCALES: Readonly<Record<string, BlockStrings>> = { en, sq };

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/**
 * Pick the language: the Accept-Language ranges by q (RFC 9110 §12.5.4; primary subtag match),
 * against `offered`; the first offered language with strings when nothing matches.
 */
export function pickLanguage(acceptLanguage: string | undefined, offered: readonly string[]): BlockStrings {
  const available = offered.filter((l) => LOCALES[l] !== undefined);
  const fallback = LOCALES[available[0] ?? 'en']!;
  if (!acceptLanguage) return fallback;
  const ranges: { tag: string; q: number; i: number }[] = [];
  acceptLanguage
    .slice(0, 1024)
    .split(',')
    .forEach((part, i) => {
      const [range, ...params] = part.trim().split(';');
      const tag = (range ?? '').trim().toLowerCase().split('-')[0] ?? '';
      let q = 1;
      for (const p of params) {
        const m = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(p);
        if (m) q = Number(m[1]);
      }
      if (tag && q > 0) ranges.push({ tag, q, i });
    });
  ranges.sort((a, b) => b.q - a.q || a.i - b.i);
  for (const r of ranges) {
    if (r.tag === '*') return fallback;
    if (available.includes(r.tag)) return LOCALES[r.tag]!;
  }
  return fallback;
}

/** A guest page: the shell around `main` (HTML already escaped), with the headers every guest page has. */
export function guestPage(p: {
  readonly lang: string;
  readonly title: string;
  readonly main: string;
  readonly css?: string;
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
}): { status: number; headers: Record<string, string>; body: Buffer } {
  const html = `<!doctype html>
<html lang="${escapeHtml(p.lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(p.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f6;color:#1d1d22}
main{max-width:34rem;margin:10vh auto;padding:2rem;background:#fff;border-radius:.75rem;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin-top:0}${p.css ?? ''}
</style>
</head>
<body>
<main>
${p.main}
</main>
</body>
</html>
`;
  const body = Buffer.from(html, 'utf8');
  return {
    status: p.status,
    body,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-length': String(body.length),
      'content-language': p.lang,
      'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      ...p.headers,
    },
  };
}
