/**
 * The page a guest sees when a plain HTTP request is blocked: status 403 (503 while no policy is
 * loaded), HTML in the guest's language (Accept-Language against blockPage.languages, one file per
 * language under proxy/locales/), the category, a random reference code, and the venue contact.
 *
 * The page holds no personal data: no client address, no URL, nothing derived from them (the
 * reference is random). Every inserted string is HTML-escaped; the page loads nothing (CSP
 * default-src 'none') and is never cached.
 */
import { randomBytes } from 'node:crypto';
import type { Decision } from '../policy/decision.js';
import { ERRORS } from '../policy/errors.js';
import type { UpstreamTlsStrings } from './upstream-tls.js';
import { en } from './locales/en.js';
import { sq } from './locales/sq.js';

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

export interface BlockPageOptions {
  /** Venue contact shown on the page (blockPage.contact); empty = "tell the venue staff". */
  readonly contact: string;
  /** Offered languages in order of preference; the first one that has strings is the default. */
  readonly languages: readonly string[];
  /** Replaces the default csam text in every language (blockPage.csamText). */
  readonly csamText?: string | undefined;
}

export interface BlockResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly reference: string;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** Crockford base32 without ambiguous letters: readable over the phone. */
const REF_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A random reference like `7K2QD-M9XAT`; not derived from the client or the URL. */
export function referenceCode(): string {
  const bytes = randomBytes(10);
  let s = '';
  for (let i = 0; i < 10; i++) {
    s += REF_ALPHABET[bytes[i]! & 31];
    if (i === 4) s += '-';
  }
  return s;
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

function contactLine(s: BlockStrings, contact: string): string {
  if (!contact) return escapeHtml(s.noContact);
  return s.contact
    .split('{contact}')
    .map(escapeHtml)
    .join(`<strong>${escapeHtml(contact)}</strong>`);
}

/** The block page for a decision (a block, or the fail-closed no-policy refusal). */
export function blockPage(decision: Decision, acceptLanguage: string | undefined, opts: BlockPageOptions): BlockResponse {
  const s = pickLanguage(acceptLanguage, opts.languages);
  const reference = referenceCode();
  const noPolicy = decision.rule === 'no-policy';
  const category = decision.category;
  const categoryName = category === null ? null : (s.categories[category] ?? category);
  const paragraphs: string[] = [];
  if (noPolicy) paragraphs.push(escapeHtml(s.noPolicy));
  else if (category === 'csam') paragraphs.push(escapeHtml(opts.csamText ?? s.csamText));
  else paragraphs.push(escapeHtml(s.blocked));
  const rows: string[] = [];
  if (categoryName !== null && !noPolicy) rows.push(`<dt>${escapeHtml(s.categoryLabel)}</dt><dd>${escapeHtml(categoryName)}</dd>`);
  rows.push(`<dt>${escapeHtml(s.referenceLabel)}</dt><dd><code>${escapeHtml(reference)}</code></dd>`);
  const html = `<!doctype html>
<html lang="${escapeHtml(s.lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(noPolicy ? s.noPolicyHeading : s.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f6;color:#1d1d22}
main{max-width:34rem;margin:10vh auto;padding:2rem;background:#fff;border-radius:.75rem;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin-top:0}dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0}
</style>
</head>
<body>
<main>
<h1>${escapeHtml(noPolicy ? s.noPolicyHeading : s.heading)}</h1>
${paragraphs.map((p) => `<p>${p}</p>`).join('\n')}
<dl>${rows.join('')}</dl>
<p>${contactLine(s, opts.contact)}</p>
</main>
</body>
</html>
`;
  const body = Buffer.from(html, 'utf8');
  return {
    status: noPolicy ? ERRORS.ERR_NO_POLICY.http : ERRORS.ERR_BLOCKED.http,
    reference,
    body,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-length': String(body.length),
      'content-language': s.lang,
      'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    },
  };
}

/** The short plain-text body of a refused CONNECT (no page can be shown inside a TLS tunnel). */
export function connectRefusal(decision: Decision): { status: number; body: string } {
  if (decision.rule === 'no-policy') return { status: ERRORS.ERR_NO_POLICY.http, body: 'safespot: filtering is not ready (no valid policy loaded)\n' };
  const category = decision.category === null ? '' : ` (category ${decision.category.replace(/[^a-z0-9_-]/gi, '')})`;
  return { status: ERRORS.ERR_BLOCKED.http, body: `safespot: blocked by the venue's filter${category}, reference ${referenceCode()}\n` };
}
