/**
 * The figures certification asks for (issue 21, point 5), as the `certification` section of a
 * period report, computed from the journal like every other figure (so `audit verify REPORT
 * --journal` recomputes them from the same rows):
 *
 * - blocked requests by listener (forward, http, tls, dns), and by listener and category;
 * - distinct blocked sites, counted by their keyed site tags (audit/site-tag.ts): no host is on
 *   disk; the count can only undercount, by tag collisions (expected n²/2^65 pairs for n sites)
 *   and by blocks kept only in per-minute aggregate rows, which carry no tag (`untaggedEvents`);
 * - hits per list (requests and DNS names, and images), every configured list shown;
 * - each list's worst freshness in the period (the oldest its version in force got: the longest
 *   stretch without a successful load or refresh, the same as `lists[].largestGapSeconds`);
 * - self-test results per canary (its configured id, never its URL);
 * - admin actions in the period: reloads, list swaps, CA changes, retention pruning (audit/journal.ts).
 *
 * Blocked images by category and match type are in `blockedImages.byCategoryAndMatch`, and the
 * filtering-active share with every gap in `filtering`; they are not repeated here.
 *
 * `loadFigures` reads the journal; `computeFigures` is pure. The HTML and CSV forms are rendered
 * here too, in the report's markup, so report.ts and report-html.ts need one line each.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import type { CountRow, Journal, JournalRow } from './journal.js';

/** What the section is computed from; plain data. */
export interface FiguresInput {
  /** Block verdicts (not self-test) grouped by listener and category. */
  blockedByListener: CountRow[];
  /** Block and monitor verdicts (not self-test) grouped by list. */
  requestHits: CountRow[];
  /** Block and monitor image matches grouped by list. */
  imageHits: CountRow[];
  distinctSites: { total: number; byCategory: Record<string, number>; untaggedEvents: number };
  /** admin and journal_prune rows in the period. */
  admin: JournalRow[];
}

/** The listeners whose blocks a report names, shown with zeros (DNS included). */
export const REPORT_LISTENERS = ['forward', 'http', 'tls', 'dns'] as const;

export interface CertificationFigures {
  blockedRequestsByListener: Record<string, number>;
  blockedRequestsByListenerAndCategory: Array<{ listener: string; category: string; count: number }>;
  distinctBlockedSites: {
    total: number;
    byCategory: Record<string, number>;
    /** Blocks kept only in per-minute aggregate rows: no tag, so the most `total` can be short by. */
    untaggedEvents: number;
    note: string;
  };
  listHits: Record<string, { requests: number; images: number; total: number }>;
  /** Per list, the oldest its version in force got within the period, in seconds. */
  listWorstFreshnessSeconds: Record<string, number>;
  selftestsByCanary: Record<string, { category: string | null; passed: number; failed: number; last: { time: string; result: string } | null }>;
  adminActions: Array<{ time: string; action: string; list: string | null; detail: string | null }>;
}

export function loadFigures(journal: Journal, from: number, to: number): FiguresInput {
  const hits = (kind: 'verdict' | 'image') =>
    journal.count({ from, to, kind, actions: ['block', 'monitor'], ...(kind === 'verdict' ? { excludeListener: 'selftest' } : {}), by: ['list'] });
  return {
    blockedByListener: journal.count({ from, to, kind: 'verdict', actions: ['block'], excludeListener: 'selftest', by: ['listener', 'category'] }),
    requestHits: hits('verdict'),
    imageHits: hits('image'),
    distinctSites: journal.distinctSites(from, to),
    admin: journal.query(from, to, ['admin', 'journal_prune']),
  };
}

const iso = (ms: number): string => new Date(ms).toISOString();

export const DISTINCT_SITES_NOTE =
  'Distinct sites are counted by a keyed hash (HMAC-SHA-256, 64 bits) of each blocked host; the key never leaves ' +
  'the appliance and no host is stored. The count can only be low: by hash collisions (expected n²/2^65 pairs ' +
  'among n sites, about 3e-8 for a million) and by at most untaggedEvents blocks that were kept only as per-minute counts.';

export interface FiguresContext {
  /** Configured list ids (shown with zeros). */
  lists: readonly string[];
  /** selftest rows of the period (the canary id is in `list`). */
  selftests: readonly JournalRow[];
  /** The report's per-list section (its largest gap is the worst freshness). */
  listsOut: ReadonlyArray<{ list: string; largestGapSeconds: number }>;
  /** The id the report gives list events that name no list (not a list: left out). */
  noList: string;
}

/** The section, from plain input (undefined input: a journal too old to have it gives zeros). Pure. */
export function computeFigures(input: FiguresInput | undefined, ctx: FiguresContext): CertificationFigures {
  const byListener: Record<string, number> = {};
  for (const l of REPORT_LISTENERS) byListener[l] = 0;
  const pairs: CertificationFigures['blockedRequestsByListenerAndCategory'] = [];
  for (const r of input?.blockedByListener ?? []) {
    const listener = r.key.listener ?? 'unknown';
    byListener[listener] = (byListener[listener] ?? 0) + r.n;
    pairs.push({ listener, category: r.key.category ?? 'none', count: r.n });
  }
  pairs.sort((a, b) => a.listener.localeCompare(b.listener) || a.category.localeCompare(b.category));
  const listHits: CertificationFigures['listHits'] = {};
  const hit = (id: string) => (listHits[id] ??= { requests: 0, images: 0, total: 0 });
  for (const id of ctx.lists) hit(id);
  for (const r of input?.requestHits ?? []) {
    const h = hit(r.key.list ?? 'none');
    h.requests += r.n;
    h.total += r.n;
  }
  for (const r of input?.imageHits ?? []) {
    const h = hit(r.key.list ?? 'none');
    h.images += r.n;
    h.total += r.n;
  }
  const freshness: Record<string, number> = {};
  for (const l of ctx.listsOut) if (l.list !== ctx.noList) freshness[l.list] = l.largestGapSeconds;
  const canaries: CertificationFigures['selftestsByCanary'] = {};
  for (const e of ctx.selftests) {
    const c = (canaries[e.list ?? 'unnamed'] ??= { category: e.category, passed: 0, failed: 0, last: null });
    const ok = e.action === 'pass';
    if (ok) c.passed++;
    else c.failed++;
    c.last = { time: iso(e.time), result: ok ? 'pass' : 'fail' };
  }
  const sites = input?.distinctSites ?? { total: 0, byCategory: {}, untaggedEvents: 0 };
  return {
    blockedRequestsByListener: byListener,
    blockedRequestsByListenerAndCategory: pairs,
    distinctBlockedSites: { total: sites.total, byCategory: { ...sites.byCategory }, untaggedEvents: sites.untaggedEvents, note: DISTINCT_SITES_NOTE },
    listHits,
    listWorstFreshnessSeconds: freshness,
    selftestsByCanary: canaries,
    adminActions: (input?.admin ?? []).map((r) => ({ time: iso(r.time), action: r.kind === 'admin' ? (r.action ?? 'admin') : r.kind, list: r.list, detail: r.detail })),
  };
}

type Row = [string, string, string, string | number | null];

/** CSV rows (section, key, subkey, value) of the section. */
export function figuresCsvRows(c: CertificationFigures | undefined): Row[] {
  if (!c) return [];
  const rows: Row[] = [];
  for (const [l, n] of Object.entries(c.blockedRequestsByListener)) rows.push(['blocked_requests_by_listener', l, '', n]);
  for (const p of c.blockedRequestsByListenerAndCategory) rows.push(['blocked_requests_by_listener', p.listener, p.category, p.count]);
  const d = c.distinctBlockedSites;
  rows.push(['distinct_blocked_sites', 'total', '', d.total], ['distinct_blocked_sites', 'untagged_events', '', d.untaggedEvents]);
  for (const [k, n] of Object.entries(d.byCategory)) rows.push(['distinct_blocked_sites', k, '', n]);
  for (const [l, h] of Object.entries(c.listHits)) rows.push(['list_hits', l, 'requests', h.requests], ['list_hits', l, 'images', h.images], ['list_hits', l, 'total', h.total]);
  for (const [l, s] of Object.entries(c.listWorstFreshnessSeconds)) rows.push(['list_worst_freshness_seconds', l, '', s]);
  for (const [id, v] of Object.entries(c.selftestsByCanary)) rows.push(['selftest_canary', id, 'passed', v.passed], ['selftest_canary', id, 'failed', v.failed]);
  for (const a of c.adminActions) rows.push(['admin', a.time, a.action, [a.list, a.detail].filter((x) => x !== null).join(': ')]);
  return rows;
}

const STRINGS = {
  en: {
    title: 'Figures for certification',
    byListener: 'Blocked requests by listener',
    listenerHead: ['listener', 'category', 'blocked'],
    distinct: 'Distinct blocked sites: {n}',
    distinctHead: ['category', 'distinct sites'],
    untagged: 'blocks kept only as per-minute counts (no site tag)',
    distinctNote: DISTINCT_SITES_NOTE,
    hits: 'Hits per list',
    hitsHead: ['list', 'requests and DNS names', 'images', 'total', 'worst freshness'],
    canaries: 'Self-tests per canary',
    canaryHead: ['canary', 'category', 'passed', 'failed', 'last result'],
    admin: 'Admin actions',
    adminHead: ['time', 'action', 'list', 'detail'],
    none: 'none',
    pass: 'pass',
    fail: 'fail',
  },
  sq: {
    title: 'Shifrat për certifikimin',
    byListener: 'Kërkesa të bllokuara sipas hyrjes (listener)',
    listenerHead: ['hyrja', 'kategoria', 'të bllokuara'],
    distinct: 'Faqe të ndryshme të bllokuara: {n}',
    distinctHead: ['kategoria', 'faqe të ndryshme'],
    untagged: 'bllokime të mbajtura vetëm si numërime për minutë (pa etiketë faqeje)',
    distinctNote:
      'Faqet e ndryshme numërohen me një hash me çelës (HMAC-SHA-256, 64 bit) të çdo hosti të bllokuar; çelësi nuk del kurrë nga pajisja dhe asnjë host nuk ruhet. ' +
      'Numri mund të jetë vetëm më i ulët: nga përplasjet e hash-it (mesatarisht n²/2^65 çifte për n faqe, rreth 3e-8 për një milion) dhe me të shumtën sa bllokimet pa etiketë.',
    hits: 'Përputhje sipas listës',
    hitsHead: ['lista', 'kërkesa dhe emra DNS', 'imazhe', 'gjithsej', 'vjetërsia më e madhe'],
    canaries: 'Vetëtestet sipas kanarinës',
    canaryHead: ['kanarina', 'kategoria', 'kaluan', 'dështuan', 'rezultati i fundit'],
    admin: 'Veprime administrative',
    adminHead: ['koha', 'veprimi', 'lista', 'hollësi'],
    none: 'asnjë',
    pass: 'kaloi',
    fail: 'dështoi',
  },
} as const;

export function esc(value: unknown): string {
  return String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * A text cell's content in report-html.ts's markup: escaped, each ISO time in a `<span class="t">`
 * that prints on one line (its hyphens are break opportunities: "2026-12-" then "08T00:…" on the
 * next line), so a range "from – to" breaks only between its two times. And its class: "w" for a
 * cell with a word too long for a column (a SHA-256 in an admin row's detail), which may break
 * anywhere so that it cannot push the table past the page's edge. Other cells break only between
 * words, so short columns never shrink to a letter a line.
 */
export const cellClass = (v: string): string => (/\S{33}/.test(v.replace(ISO_TIME, '')) ? ' class="w"' : '');
export const cellText = (v: string): string => esc(v).replace(ISO_TIME, '<span class="t">$&</span>');
const ISO_TIME = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g;

function dur(seconds: number): string {
  const s = Math.round(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}

/** The section as HTML, in the report's markup (tables with numeric cells `class="n"`), in en or sq. */
export function figuresHtml(c: CertificationFigures | undefined, lang: string = 'en'): string {
  if (!c) return '';
  const S = lang === 'sq' ? STRINGS.sq : STRINGS.en;
  const n = (v: number): string => v.toLocaleString(lang === 'sq' ? 'sq-AL' : 'en-US');
  const table = (head: readonly string[], rows: Array<Array<string | number>>): string => {
    const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
    const cell = (v: string | number) => (typeof v === 'number' ? `<td class="n">${esc(n(v))}</td>` : `<td${cellClass(v)}>${cellText(v)}</td>`);
    const body = rows.length ? rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n') : `<tr><td colspan="${head.length}">${esc(S.none)}</td></tr>`;
    return `<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
  };
  const d = c.distinctBlockedSites;
  const listenerRows: Array<Array<string | number>> = Object.entries(c.blockedRequestsByListener).map(([l, v]) => [l, '', v]);
  for (const p of c.blockedRequestsByListenerAndCategory) listenerRows.push([`  ${p.listener}`, p.category, p.count]);
  return `<h2 class="part">${esc(S.title)}</h2>
<h2>${esc(S.byListener)}</h2>
${table(S.listenerHead, listenerRows)}
<h2>${esc(S.distinct.replace('{n}', n(d.total)))}</h2>
${table(S.distinctHead, [...Object.entries(d.byCategory).map(([k, v]) => [k, v] as Array<string | number>), [S.untagged, d.untaggedEvents]])}
<p class="note">${esc(S.distinctNote)}</p>
<h2>${esc(S.hits)}</h2>
${table(
  S.hitsHead,
  Object.entries(c.listHits).map(([l, h]) => {
    const f = c.listWorstFreshnessSeconds[l];
    return [l, h.requests, h.images, h.total, f === undefined ? '' : dur(f)];
  }),
)}
<h2>${esc(S.canaries)}</h2>
${table(
  S.canaryHead,
  Object.entries(c.selftestsByCanary).map(([id, v]) => [id, v.category ?? '', v.passed, v.failed, v.last ? `${v.last.result === 'pass' ? S.pass : S.fail} ${v.last.time}` : '']),
)}
<h2>${esc(S.admin)}</h2>
${table(S.adminHead, c.adminActions.map((a) => [a.time, a.action, a.list ?? '', a.detail ?? '']))}
`;
}
