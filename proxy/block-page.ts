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
import { escapeHtml, guestPage, pickLanguage, type BlockStrings } from './guest-page.js';



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
  const page = guestPage({
    lang: s.lang,
    title: noPolicy ? s.noPolicyHeading : s.title,
    css: 'dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0}',
    main: [
      `<h1>${escapeHtml(noPolicy ? s.noPolicyHeading : s.heading)}</h1>`,
      ...paragraphs.map((p) => `<p>${p}</p>`),
      `<dl>${rows.join('')}</dl>`,
      `<p>${contactLine(s, opts.contact)}</p>`,
    ].join('\n'),
    status: noPolicy ? ERRORS.ERR_NO_POLICY.http : ERRORS.ERR_BLOCKED.http,
  });
  return { ...page, reference };
}

/** The short plain-text body of a refused CONNECT (no page can be shown inside a TLS tunnel). */
export function connectRefusal(decision: Decision): { status: number; body: string } {
  if (decision.rule === 'no-policy') return { status: ERRORS.ERR_NO_POLICY.http, body: 'safespot: filtering is not ready (no valid policy loaded)\n' };
  const category = decision.category === null ? '' : ` (category ${decision.category.replace(/[^a-z0-9_-]/gi, '')})`;
  return { status: ERRORS.ERR_BLOCKED.http, body: `safespot: blocked by the venue's filter${category}, reference ${referenceCode()}\n` };
}
