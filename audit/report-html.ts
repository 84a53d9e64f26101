/**
 * The HTML form of a period report: one self-contained file (inline CSS and SVG, no scripts, no
 * external assets) that an auditor can open offline and print. Every value from the journal is
 * escaped; the markup is XHTML-style well-formed (every element closed) so that it also parses as XML.
 */
import { NO_LIST, type Report } from './report.js';
import { cellClass, cellText, esc, figuresHtml } from './report-figures.js';
import { en, fill, REPORT_STRINGS, type ReportLang, type ReportStrings } from './report-strings.js';

export { esc };

const fmt = (n: number): string => n.toLocaleString('en-US');
const pct = (f: number | null): string => (f === null ? 'n/a' : `${(f * 100).toFixed(3)} %`);
const dur = (seconds: number): string => {
  const s = Math.round(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
};

function table(head: string[], rows: Array<Array<string | number>>, empty = 'none', num: (n: number) => string = fmt, mono = false): string {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  // In a two-column table (label, value) the value may be a key or a hash: `mono` sets it so.
  const cell = (c: string | number, i: number) =>
    typeof c === 'number' ? `<td class="n">${esc(num(c))}</td>` : mono && i > 0 ? `<td class="mono">${esc(c)}</td>` : `<td${cellClass(c)}>${cellText(c)}</td>`;
  const body = rows.length
    ? rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n')
    : `<tr><td colspan="${head.length}">${esc(empty)}</td></tr>`;
  // A label/value table has no head: an empty head row would print as a doubled top border.
  const thead = head.some((h) => h !== '') ? `<thead><tr>${th}</tr></thead>` : '';
  return `<table>${thead}<tbody>\n${body}\n</tbody></table>`;
}

/** Stacked bars (requests, images) per day. */
export function blocksChart(days: Report['blocksPerDay']): string {
  const width = 760;
  const height = 220;
  const left = 48;
  const bottom = 28;
  const plotW = width - left - 8;
  const plotH = height - bottom - 10;
  const max = Math.max(1, ...days.map((d) => d.requests + d.images));
  const step = days.length ? plotW / days.length : plotW;
  const barW = Math.max(1, step * 0.8);
  const y = (v: number): number => 10 + plotH - (v / max) * plotH;
  const bars = days
    .map((d, i) => {
      const x = (left + i * step).toFixed(2);
      const req = `<rect class="req" x="${x}" y="${y(d.requests).toFixed(2)}" width="${barW.toFixed(2)}" height="${(plotH - (y(d.requests) - 10)).toFixed(2)}"><title>${esc(`${d.day}: ${d.requests} requests blocked`)}</title></rect>`;
      const imgTop = y(d.requests + d.images);
      const img = d.images
        ? `<rect class="img" x="${x}" y="${imgTop.toFixed(2)}" width="${barW.toFixed(2)}" height="${(y(d.requests) - imgTop).toFixed(2)}"><title>${esc(`${d.day}: ${d.images} images blocked`)}</title></rect>`
        : '';
      return req + img;
    })
    .join('\n');
  const first = days[0]?.day ?? '';
  const last = days[days.length - 1]?.day ?? '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Blocks per day">
<line x1="${left}" y1="${10 + plotH}" x2="${width - 8}" y2="${10 + plotH}" class="axis" />
<line x1="${left}" y1="10" x2="${left}" y2="${10 + plotH}" class="axis" />
<text x="${left - 4}" y="16" text-anchor="end">${esc(fmt(max))}</text>
<text x="${left - 4}" y="${10 + plotH}" text-anchor="end">0</text>
<text x="${left}" y="${height - 8}">${esc(first)}</text>
<text x="${width - 8}" y="${height - 8}" text-anchor="end">${esc(last)}</text>
${bars}
</svg>`;
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #999; }
h2.part { font-size: 1.35em; border-bottom: 2px solid #3b5b92; }
table { border-collapse: collapse; margin: .5em 0; max-width: 100%; }
th, td { border: 1px solid #bbb; padding: 2px 8px; text-align: left; vertical-align: top; }
td.w { overflow-wrap: anywhere; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; } .t { white-space: nowrap; }
.note { color: #444; font-size: .9em; max-width: 50em; } .note code { white-space: nowrap; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: .85em; overflow-wrap: anywhere; word-break: break-all; }
pre { white-space: pre-wrap; background: #f3f3f3; border: 1px solid #bbb; padding: 6px 8px; max-width: 60em; }
.verify { border: 2px solid #3b5b92; padding: 0 1em .5em; margin: 1em 0; max-width: 62em; }
svg { max-width: 100%; height: auto; }
svg text { font: 11px sans-serif; fill: #333; } svg .axis { stroke: #333; } svg .req { fill: #3b5b92; } svg .img { fill: #c0504d; }
.key span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
@page { size: A4; margin: 14mm 12mm 16mm; }
@media print {
  body { margin: 0; font-size: 10.5pt; } h1, h2 { break-after: avoid; } h2.part { break-before: page; }
  table, svg, .verify, pre { break-inside: avoid; } tr { break-inside: avoid; } thead { display: table-header-group; }
  th, td { padding: 1px 5px; }
  .verify { max-width: none; box-sizing: border-box; } .verify table { width: 100%; }
  .verify td:first-child { width: 26%; } .verify td.mono { font-size: .75em; } pre { max-width: none; }
  .key span, svg rect, pre, .verify, h2.part { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}
`;

/** A CSS string literal (for the page footer): quotes, backslashes and `<` escaped, one line. */
const cssString = (s: string): string => `"${s.replace(/[\\"<>\n\r]/g, (c) => `\\${c.charCodeAt(0).toString(16)} `)}"`;

/**
 * Every printed page says whose it is and where it belongs: the venue, its site id and the key's
 * fingerprint at the foot, with "page / pages" (CSS @page margin boxes, CSS Paged Media 3 §5), so a
 * page separated from the rest of a filed certificate still names the report it came from.
 */
function pageFooter(r: Report): string {
  const who = r.appliance ? [r.appliance.site.name, r.appliance.site.id, r.appliance.fingerprint].filter((x) => x).join(' · ') : '';
  const period = `${r.period.from} – ${r.period.to}`;
  return `@page { @bottom-left { content: ${cssString(who ? `${who}\n${period}` : period)}; white-space: pre; font: 7pt ui-monospace, monospace; color: #444; }
  @bottom-right { content: counter(page) " / " counter(pages); font: 8pt sans-serif; color: #444; } }`;
}

/** A note in the report's strings with `code` in backticks: escaped, the code kept on one line. */
const withCode = (text: string): string => esc(text).replace(/`([^`]+)`/g, '<code>$1</code>');

export interface HtmlOptions {
  /** The language of the page (default en). */
  lang?: ReportLang;
  /** The report's file name, for the verify command it shows (default report.html). */
  file?: string;
}

export function reportHtml(r: Report, opts: HtmlOptions = {}): string {
  const S = REPORT_STRINGS[opts.lang ?? 'en'] ?? en;
  const n = (v: number): string => v.toLocaleString(S.lang === 'sq' ? 'sq-AL' : 'en-US');
  const tbl = (head: readonly string[], rows: Array<Array<string | number>>, empty = S.none) => table([...head], rows, empty, n);
  const f = r.filtering;
  const cat = (m: Record<string, number>) => Object.entries(m).map(([k, v]) => [k, v] as Array<string | number>);
  const listName = (id: string) => (id === NO_LIST ? S.allLists : id);
  const listRows = r.lists.map((l) => [
    listName(l.list),
    l.loads,
    l.refreshes,
    l.failures,
    l.lastSuccess ?? S.never,
    dur(l.largestGapSeconds),
    // A no-break space keeps the dash with the first time when the range wraps.
    l.largestGap ? `${l.largestGap.from}\u00a0– ${l.largestGap.to}` : '',
  ]);
  const HISTORY_ROWS = 500;
  const history = r.lists.flatMap((l) => l.history.map((h) => [h.time, listName(l.list), h.kind, h.detail ?? ''] as Array<string | number>));
  history.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  const historyNote = history.length > HISTORY_ROWS ? `<p class="note">${esc(fill(S.moreHistory, { n: n(history.length - HISTORY_ROWS) }))}</p>` : '';
  const result = (x: string) => (x === 'pass' ? S.pass : x === 'fail' ? S.fail : x);
  const selftestRows = Object.entries(r.selftests.byCategory).map(([c, v]) => [
    c,
    v.passed,
    v.failed,
    v.last ? fill(S.lastResult, { result: result(v.last.result), time: v.last.time }) : '',
  ]);
  const venue: Array<Array<string | number>> = r.appliance
    ? [
        [S.venue, r.appliance.site.name ?? ''],
        [S.venueId, r.appliance.site.id],
      ]
    : [];
  const lost = r.journalKeeping.lostEvents;
  return `<!DOCTYPE html>
<html lang="${esc(S.lang)}" xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta charset="utf-8" />
<title>${esc(`${S.title} ${r.period.from} – ${r.period.to}`)}</title>
<style>${STYLE}${pageFooter(r)}</style>
</head>
<body>
<h1>${esc(S.title)}${r.appliance?.site.name ? ` – ${esc(r.appliance.site.name)}` : ''}</h1>
${tbl(
  ['', ''],
  [
    ...venue,
    [S.periodFrom, r.period.from],
    [S.periodTo, r.period.to],
    [S.measuredUntil, r.period.measuredUntil],
    [S.generatedAt, r.generatedAt],
    [S.journal, r.journal],
    ...(r.generator ? [[S.generator, r.generator]] : []),
  ],
)}
${verification(r, S, opts.file ?? 'report.html', n)}
<h2>${esc(S.policies)}</h2>
${tbl([S.policyVersion, S.policySince, S.policyHow], r.policies.map((p) => [p.version, p.inForceAtStart ? `${p.since} (${S.policyAtStart})` : p.since, p.how ?? '']))}
<h2>${esc(S.filteringActive)}</h2>
${tbl(
  ['', ''],
  [
    [S.fraction, pct(f.activeFraction)],
    [S.active, dur(f.activeSeconds)],
    [S.inactive, dur(f.inactiveSeconds)],
    [S.down, dur(f.downSeconds)],
  ],
)}
<p class="note">${esc(S.filteringNote)}</p>
${tbl(S.gapHead, f.gaps.map((g) => [g.from, g.to, S.states[g.state], dur(g.seconds)]), S.noGaps)}
<h2>${esc(S.blockedRequests)}: ${esc(n(r.blockedRequests.total))}</h2>
${tbl([S.category, S.blockedRequests], cat(r.blockedRequests.byCategory))}
<h2>${esc(S.blockedImages)}: ${esc(n(r.blockedImages.total))}</h2>
${tbl([S.category, S.blockedImages], cat(r.blockedImages.byCategory))}
${tbl([S.category, S.matchType, S.blockedImages], r.blockedImages.byCategoryAndMatch.map((p) => [p.category, p.match, p.count]))}
<h2>${esc(S.blocksPerDay)}</h2>
<p class="key"><span style="background:#3b5b92"></span>${esc(S.requests)}<span style="background:#c0504d"></span>${esc(S.images)}</p>
${blocksChart(r.blocksPerDay)}
<h2>${esc(S.monitored)}</h2>
${tbl([S.category, S.requests, S.images], mergeMonitored(r))}
<h2>${esc(S.lists)}</h2>
<p class="note">${esc(S.listsNote)}</p>
${tbl(S.listHead.slice(0, 7), listRows)}
${tbl(S.historyHead, history.slice(0, HISTORY_ROWS))}
${historyNote}
<h2>${esc(S.keeping)}</h2>
${tbl(
  ['', ''],
  [
    [S.keptAggregated, n(r.journalKeeping.aggregatedEvents)],
    [S.aggregateRows, n(r.journalKeeping.aggregateRows)],
    ...Object.entries(r.journalKeeping.aggregatedByReason).map(([k, v]) => [`  ${S.reason}: ${k}`, n(v)]),
    [S.lostEvents, n(lost)],
    ...Object.entries(r.journalKeeping.lostByReason).map(([k, v]) => [`  ${S.reason}: ${k}`, n(v)]),
  ],
)}
<p class="note">${esc(`${S.keepingNote} ${lost > 0 ? fill(S.lostNote, { lost: n(lost) }) : S.noLoss}`)}</p>
<h2>${esc(fill(S.selftests, { passed: n(r.selftests.passed), failed: n(r.selftests.failed) }))}</h2>
${tbl(S.selftestHead, selftestRows)}
${tbl(S.failureHead, r.selftests.failures.map((x) => [x.time, x.category ?? '', x.detail ?? '']), S.noFailures)}
${figuresHtml(r.certification, S.lang)}</body>
</html>
`;
}

/** The box an auditor files the report by: the key's fingerprint, the covering checkpoint, the command. */
function verification(r: Report, S: ReportStrings, file: string, n: (v: number) => string): string {
  if (!r.appliance) return `<p class="note">${esc(S.unsigned)}</p>`;
  const keyfile = `${r.appliance.site.id}.pub`;
  const command = `safespot audit verify --key ${keyfile} ${file}`;
  const cp = r.checkpoint;
  const rows: Array<Array<string | number>> = [
    [S.fingerprint, r.appliance.fingerprint],
    [S.verifierKey, r.appliance.key],
    ...(cp ? [[S.checkpoint, fill(S.checkpointValue, { size: n(cp.size), time: cp.time })], [S.root, cp.root]] : []),
  ];
  return `<div class="verify">
<h2>${esc(S.verification)}</h2>
${table(['', ''], rows, S.none, n, true)}
<p class="note">${withCode(fill(S.verifyHow, { keyfile, file }))}</p>
<p>${esc(S.verifyCommand)}:</p>
<pre>${esc(command)}</pre>
</div>`;
}

function mergeMonitored(r: Report): Array<Array<string | number>> {
  const keys = [...new Set([...Object.keys(r.monitored.requests.byCategory), ...Object.keys(r.monitored.images.byCategory)])];
  return keys.map((k) => [k, r.monitored.requests.byCategory[k] ?? 0, r.monitored.images.byCategory[k] ?? 0]);
}
