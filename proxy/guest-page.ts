/**
 * What every page a guest may see shares: the strings of each language (locales/), the choice of
 * language from Accept-Language, HTML escaping, and one page shell with the same headers (no
 * caching, a CSP that allows nothing but inline style, no sniffing, no referrer). The block page
 * (block-page.ts) and the bad-certificate page (upstream-tls.ts) are both made with it.
 */
import { en } from './locales/en.js';
import { sq } from './locales/sq.js';

/** The kinds of certificate failure the guest is told about; each locale words every one. */
export type CertProblem =
  | 'expired'
  | 'notYetValid'
  | 'wrongName'
  | 'selfSigned'
  | 'untrustedRoot'
  | 'untrustedIssuer'
  | 'untrusted'
  | 'rejected'
  | 'revoked'
  | 'badSignature'
  | 'invalidAuthority'
  | 'wrongPurpose'
  | 'chainTooLong'
  | 'malformed';

/** Strings of the explanatory page in one language (the `upstreamTls` part of a locale file). */
export interface UpstreamTlsStrings {
  /** Heading and title when the certificate failed verification. */
  readonly certHeading: string;
  /** Heading and title when the handshake failed for another reason. */
  readonly tlsHeading: string;
  /** With `{problem}`, one of `problems`. This and the next two end without a full stop: the page adds the OpenSSL code, then the stop. */
  readonly certFailed: string;
  /** A certificate failure of a kind not in the table. */
  readonly certFailedUnknown: string;
  readonly tlsFailed: string;
  readonly problems: Readonly<Record<CertProblem, string>>;
  /** Why the page was not loaded and what the guest can do. */
  readonly explanation: string;
}

/** Strings of one language (the block page's, and the other pages a guest may see). */
export interface BlockStrings {
  /** BCP 47 primary tag, for `lang` and Content-Language. */
  readonly lang: string;
  readonly title: string;
  readonly heading: string;
  readonly blocked: string;
  readonly categoryLabel: string;
  /** Names of the well-known categories; an operator's own category word is shown as it is. */
  readonly categories: Readonly<Record<string, string>>;
  readonly otherCategory: string;
  readonly referenceLabel: string;
  /** With `{contact}`. */
  readonly contact: string;
  readonly noContact: string;
  /** Default hotline-style text for the csam category. */
  readonly csamText: string;
  readonly noPolicyHeading: string;
  readonly noPolicy: string;
  /** The explanatory 502 page for an intercepted upstream that fails TLS (proxy/upstream-tls.ts). */
  readonly upstreamTls: UpstreamTlsStrings;
}

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
