/**
 * The venue's status page, `/` on the admin listener (issue 20, point 5): for venue staff who have no
 * Grafana. Filtering active or not, the lists and their age, the self-test per canary, blocked
 * requests today and this month by category with a small chart, the site and the fingerprint of the
 * appliance's signing key. English and Albanian (Accept-Language, `?lang=` overrides).
 *
 * What it reads, and nothing else (status-figures.ts): the metrics exposition the listener serves
 * at /metrics, the journal's grouped counts by time and category, and the config's site name. So it
 * can show nothing about guests: no address, no URL, no host. It is one HTML document with an
 * inline SVG chart and inline style: no script, no external asset, a CSP that allows nothing else.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Journal } from '../../audit/journal.js';
import { escapeHtml, LOCALES, pickLanguage } from '../../proxy/guest-page.js';
import type { Config } from '../config.js';
import type { RouteHandler } from './listener.js';
import { BlockTally, NULL_CATEGORY, parseExposition, viewFromSamples, type BlockFigures, type MetricFigures } from './status-figures.js';
import { STATUS_LOCALES, type StatusStrings } from './status-strings.js';

export { PAST_TTL_MS, TODAY_TTL_MS } from './status-figures.js';

const DAY_MS = 86_400_000;

export interface StatusSources {
  readonly config: () => Readonly<Config>;
  /** The same exposition /metrics serves. */
  readonly registry: Pick<Registry, 'metrics'>;
  readonly journal: Pick<Journal, 'count'>;
  /** Unix ms; Date.now by default. */
  readonly now?: () => number;
}

/** Everything the page shows. */
export interface StatusView extends Omit<MetricFigures, 'site'> {
  readonly site: string;
  readonly siteName: string;
  /** Null when the journal could not be read. */
  readonly blocks: BlockFigures | null;
  /** Unix ms. */
  readonly now: number;
}

const COLOURS: Readonly<Record<string, string>> = { csam: '#8e1b1b', adult: '#d9822b', malware: '#7a3fa0', bypass: '#2f6fb0' };
const SPARE_COLOURS = ['#3a8f6a', '#b0407a', '#6b7a1f', '#4a4a9a', '#9a6b4a', '#2a8a9a'];

function fill(template: string, key: string, value: string): string {
  return template.split(`{${key}}`).join(value);
}

/** An age in whole units ("45 s", "3 min", "5 h", "2 d"). */
export function formatAge(seconds: number, s: StatusStrings): string {
  const n = Math.max(0, Math.floor(seconds));
  if (n < 120) return `${n} ${s.units[0]}`;
  if (n < 7200) return `${Math.floor(n / 60)} ${s.units[1]}`;
  if (n < 2 * 86400) return `${Math.floor(n / 3600)} ${s.units[2]}`;
  return `${Math.floor(n / 86400)} ${s.units[3]}`;
}

function categoryName(c: string, s: StatusStrings): string {
  if (c === NULL_CATEGORY) return s.noCategory;
  if (c === 'other') return s.otherCategory;
  return LOCALES[s.lang]?.categories[c] ?? c;
}

function colourOf(categories: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  let spare = 0;
  for (const c of categories) out.set(c, COLOURS[c] ?? SPARE_COLOURS[spare++ % SPARE_COLOURS.length]!);
  return out;
}

/** Stacked columns, one per day of the month; inline SVG, no script. */
function chart(b: BlockFigures, categories: readonly string[], colour: Map<string, string>, s: StatusStrings): string {
  const d = new Date(b.monthStart);
  const days = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) - DAY_MS).getUTCDate();
  const W = 620;
  const H = 170;
  const left = 44;
  const bottom = 22;
  const top = 8;
  const plotW = W - left - 8;
  const plotH = H - top - bottom;
  let max = 0;
  for (const m of b.daily.values()) max = Math.max(max, [...m.values()].reduce((a, n) => a + n, 0));
  const scaleMax = max === 0 ? 1 : max;
  const colW = plotW / days;
  const parts: string[] = [];
  parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${W - 8}" y2="${top + plotH}" stroke="#999"/>`);
  parts.push(`<text x="${left - 6}" y="${top + 10}" text-anchor="end">${max}</text>`);
  parts.push(`<text x="${left - 6}" y="${top + plotH}" text-anchor="end">0</text>`);
  for (let day = 1; day <= days; day++) {
    const x = left + (day - 1) * colW;
    if (day === 1 || day % 5 === 0) parts.push(`<text x="${(x + colW / 2).toFixed(1)}" y="${H - 6}" text-anchor="middle">${day}</text>`);
    const m = b.daily.get(day);
    if (!m) continue;
    let y = top + plotH;
    for (const c of categories) {
      const n = m.get(c) ?? 0;
      if (n === 0) continue;
      const h = Math.max(1, (n / scaleMax) * plotH);
      y -= h;
      parts.push(
        `<rect x="${(x + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, colW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${colour.get(c)}">` +
          `<title>${day}: ${escapeHtml(categoryName(c, s))} ${n}</title></rect>`,
      );
    }
  }
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${escapeHtml(s.chartLabel)}" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg>`;
}

function blocksSection(b: BlockFigures | null, s: StatusStrings, fmt: (n: number) => string): string {
  if (!b) return `<p class="warn">${escapeHtml(s.journalUnavailable)}</p>`;
  const categories = [...new Set([...b.requestsMonth.keys(), ...b.imagesMonth.keys()])].sort((x, y) => {
    const known = ['csam', 'adult', 'malware', 'bypass'];
    const ix = known.indexOf(x);
    const iy = known.indexOf(y);
    return (ix < 0 ? 99 : ix) - (iy < 0 ? 99 : iy) || x.localeCompare(y);
  });
  const colour = colourOf(categories);
  const reqCats = categories.filter((c) => b.requestsMonth.has(c));
  if (reqCats.length === 0 && b.imagesMonth.size === 0) return `<p>${escapeHtml(s.nothingBlocked)}</p>`;
  const sum = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((a, n) => a + n, 0);
  const row = (c: string, today: number, month: number) =>
    `<tr data-category="${escapeHtml(c)}"><td><span class="key" style="background:${colour.get(c)}"></span>${escapeHtml(categoryName(c, s))}</td>` +
    `<td class="n">${fmt(today)}</td><td class="n">${fmt(month)}</td></tr>`;
  let html = `<table class="blocks"><thead><tr><th>${escapeHtml(s.category)}</th><th class="n">${escapeHtml(s.today)}</th><th class="n">${escapeHtml(s.month)}</th></tr></thead><tbody>`;
  for (const c of reqCats) html += row(c, b.requestsToday.get(c) ?? 0, b.requestsMonth.get(c) ?? 0);
  html += `</tbody><tfoot><tr data-category="total"><th>${escapeHtml(s.total)}</th><th class="n">${fmt(sum(b.requestsToday))}</th><th class="n">${fmt(sum(b.requestsMonth))}</th></tr></tfoot></table>`;
  if (reqCats.length > 0) html += `<figure>${chart(b, reqCats, colour, s)}<figcaption class="muted">${escapeHtml(s.chartLabel)}</figcaption></figure>`;
  if (b.imagesMonth.size > 0) {
    html += `<h3>${escapeHtml(s.images)}</h3><table class="images"><thead><tr><th>${escapeHtml(s.category)}</th><th class="n">${escapeHtml(s.today)}</th><th class="n">${escapeHtml(s.month)}</th></tr></thead><tbody>`;
    for (const c of categories.filter((x) => b.imagesMonth.has(x))) html += row(c, b.imagesToday.get(c) ?? 0, b.imagesMonth.get(c) ?? 0);
    html += '</tbody></table>';
  }
  return html;
}

const CSS = `
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f6;color:#1d1d22}
main{max-width:46rem;margin:3vh auto;padding:1.5rem 2rem;background:#fff;border-radius:.75rem;box-shadow:0 1px 4px #0002}
header{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;flex-wrap:wrap}
h1{font-size:1.4rem;margin:0}h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{font-size:1rem}
nav a+a{margin-left:.6rem}figure{margin:0}nav a[aria-current]{font-weight:bold;color:inherit;text-decoration:none}
.badge{display:inline-block;padding:.3rem .8rem;border-radius:1rem;font-weight:bold;color:#fff}
.ok{background:#2d7a3e}.bad{background:#b3261e}.unknown{background:#777}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee}
.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#2d7a3e;font-weight:bold}.fail{color:#b3261e;font-weight:bold}.warn{color:#b3261e}
.key{display:inline-block;width:.8rem;height:.8rem;margin-right:.4rem;border-radius:.15rem;vertical-align:-.05rem}
.chart{margin-top:.8rem;font-size:11px;fill:#555}code{word-break:break-all}
.muted{color:#666;font-size:.9rem}
`;

/** The whole page as HTML (every value escaped). */
export function renderStatusPage(v: StatusView, s: StatusStrings): string {
  const fmt = (n: number): string => n.toLocaleString(s.lang === 'sq' ? 'sq-AL' : 'en-GB');
  const nowS = v.now / 1000;
  const age = (t: number) => escapeHtml(fill(s.ago, 'age', formatAge(nowS - t, s)));
  const badge =
    v.filteringActive === true
      ? `<span class="badge ok" id="filtering" data-active="1">${escapeHtml(s.active)}</span><p>${escapeHtml(s.activeNote)}</p>`
      : v.filteringActive === false
        ? `<span class="badge bad" id="filtering" data-active="0">${escapeHtml(s.inactive)}</span><p class="warn">${escapeHtml(s.inactiveNote)}</p>`
        : `<span class="badge unknown" id="filtering">?</span><p>${escapeHtml(s.unknownNote)}</p>`;
  const lists =
    v.lists.length === 0
      ? `<p>${escapeHtml(s.noLists)}</p>`
      : `<table><thead><tr><th>${escapeHtml(s.list)}</th><th class="n">${escapeHtml(s.entries)}</th><th>${escapeHtml(s.loaded)}</th><th>${escapeHtml(s.state)}</th></tr></thead><tbody>` +
        v.lists
          .map((l) => {
            const loaded = l.lastLoaded !== null && l.lastLoaded > 0;
            // The same rule as the SafespotListStale alert: older than twice its refresh interval.
            const stale = loaded && l.interval !== null && l.interval > 0 && nowS - l.lastLoaded! > 2 * l.interval;
            const state = !loaded ? `<span class="fail">${escapeHtml(s.never)}</span>` : stale ? `<span class="fail">${escapeHtml(s.stale)}</span>` : `<span class="pass">${escapeHtml(s.fresh)}</span>`;
            return `<tr><td><code>${escapeHtml(l.id)}</code></td><td class="n">${l.entries === null ? '' : fmt(l.entries)}</td><td>${loaded ? age(l.lastLoaded!) : ''}</td><td>${state}</td></tr>`;
          })
          .join('') +
        '</tbody></table>';
  const canaries =
    v.canaries.length === 0
      ? `<p>${escapeHtml(s.noCanaries)}</p>`
      : `<table><thead><tr><th>${escapeHtml(s.canary)}</th><th>${escapeHtml(s.category)}</th><th>${escapeHtml(s.result)}</th></tr></thead><tbody>` +
        v.canaries
          .map(
            (c) =>
              `<tr data-canary="${escapeHtml(c.id)}"><td><code>${escapeHtml(c.id)}</code></td><td>${escapeHtml(categoryName(c.category, s))}</td>` +
              `<td class="${c.ok ? 'pass' : 'fail'}">${escapeHtml(c.ok ? s.pass : s.fail)}</td></tr>`,
          )
          .join('') +
        '</tbody></table>' +
        (v.selftestLastRun !== null ? `<p class="muted">${escapeHtml(fill(s.lastRun, 'age', fill(s.ago, 'age', formatAge(nowS - v.selftestLastRun, s))))}</p>` : '');
  const nav = (['en', 'sq'] as const)
    .map((l) => `<a href="?lang=${l}" hreflang="${l}"${l === s.lang ? ' aria-current="true"' : ''}>${escapeHtml(STATUS_LOCALES[l].name)}</a>`)
    .join('');
  const when = new Date(v.now).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  const heading = v.siteName || v.site;
  return `<!doctype html>
<html lang="${s.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(s.title)} · ${escapeHtml(heading)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header><h1>${escapeHtml(s.title)}: ${escapeHtml(heading)}</h1><nav>${nav}</nav></header>
<h2>${escapeHtml(s.filtering)}</h2>
${badge}${v.policyVersion ? `<p class="muted">${escapeHtml(s.policyVersion)}: <code>${escapeHtml(v.policyVersion)}</code></p>` : ''}
<h2>${escapeHtml(s.lists)}</h2>
${lists}
<h2>${escapeHtml(s.selftest)}</h2>
${canaries}
<h2>${escapeHtml(s.blocked)}</h2>
${blocksSection(v.blocks, s, fmt)}
<p class="muted">${escapeHtml(s.blockedNote)}</p>
<h2>${escapeHtml(s.appliance)}</h2>
<table><tbody>
<tr><th>${escapeHtml(s.site)}</th><td>${escapeHtml(v.siteName ? `${v.siteName} (${v.site})` : v.site)}</td></tr>
<tr><th>${escapeHtml(s.fingerprint)}</th><td>${v.fingerprint ? `<code id="fingerprint">${escapeHtml(v.fingerprint)}</code>` : escapeHtml(s.noFingerprint)}</td></tr>
</tbody></table>
<p class="muted">${escapeHtml(fill(s.generated, 'when', when))} ${escapeHtml(s.privacy)}</p>
</main>
</body>
</html>
`;
}

/** The language: `?lang=en|sq`, else Accept-Language against the venue's order (blockPage.languages), else English. */
export function statusLanguage(search: URLSearchParams, acceptLanguage: string | undefined, venueOrder: readonly string[]): StatusStrings {
  const forced = search.get('lang');
  if (forced === 'en' || forced === 'sq') return STATUS_LOCALES[forced];
  const offered = [...venueOrder.filter((l) => l === 'en' || l === 'sq'), 'en', 'sq'];
  const picked = pickLanguage(acceptLanguage, offered).lang;
  return picked === 'sq' ? STATUS_LOCALES.sq : STATUS_LOCALES.en;
}

/** The `/` route (token-protected like /metrics: listener.ts gates it). */
export function statusPageRoute(src: StatusSources): RouteHandler {
  const now = src.now ?? Date.now;
  const tally = new BlockTally(src.journal, now);
  return async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const config = src.config();
    const s = statusLanguage(url.searchParams, req.headers['accept-language'], config.blockPage.languages);
    const fromMetrics = viewFromSamples(parseExposition(await src.registry.metrics()));
    let blocks: BlockFigures | null = null;
    try {
      blocks = tally.read();
    } catch (err) {
      process.stderr.write(`safespot: status page: the journal could not be read: ${(err as Error).message}\n`);
    }
    const html = renderStatusPage({ ...fromMetrics, site: fromMetrics.site ?? config.site.id, siteName: config.site.name, blocks, now: now() }, s);
    const body = Buffer.from(html, 'utf8');
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': String(body.length),
      'content-language': s.lang,
      vary: 'Accept-Language',
      'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
    });
    res.end(method === 'HEAD' ? undefined : body);
  };
}
