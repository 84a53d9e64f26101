/**
 * The HTML form of a period report: one self-contained file (inline CSS and SVG, no scripts, no
 * external assets) that an auditor can open offline and print. Every value from the journal is
 * escaped; the markup is XHTML-style well-formed (every element closed) so that it also parses as XML.
 */
import type { Report } from './report.js';

export function esc(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const fmt = (n: number): string => n.toLocaleString('en-US');
const pct = (f: number | null): string => (f === null ? 'n/a' : `${(f * 100).toFixed(3)} %`);
const dur = (seconds: number): string => {
  const s = Math.round(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
};

function table(head: string[], rows: Array<Array<string | number>>, empty = 'none'): string {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  const body = rows.length
    ? rows.map((r) => `<tr>${r.map((c) => `<td${typeof c === 'number' ? ' class="n"' : ''}>${esc(typeof c === 'number' ? fmt(c) : c)}</td>`).join('')}</tr>`).join('\n')
    : `<tr><td colspan="${head.length}">${esc(empty)}</td></tr>`;
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
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
table { border-collapse: collapse; margin: .5em 0; } th, td { border: 1px solid #bbb; padding: 2px 8px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .note { color: #444; font-size: .9em; max-width: 50em; }
svg text { font: 11px sans-serif; fill: #333; } svg .axis { stroke: #333; } svg .req { fill: #3b5b92; } svg .img { fill: #c0504d; }
.key span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
@media print { body { margin: 0; } h2 { break-after: avoid; } table, svg { break-inside: avoid; } }
`;

export function reportHtml(r: Report): string {
  const f = r.filtering;
  const cat = (m: Record<string, number>) => Object.entries(m).map(([k, n]) => [k, n] as Array<string | number>);
  const listRows = r.lists.map((l) => [
    l.list,
    l.loads,
    l.refreshes,
    l.failures,
    l.lastSuccess ?? 'never',
    dur(l.largestGapSeconds),
    l.largestGap ? `${l.largestGap.from} – ${l.largestGap.to}` : '',
  ]);
  const HISTORY_ROWS = 500;
  const history = r.lists.flatMap((l) => l.history.map((h) => [h.time, l.list, h.kind, h.detail ?? ''] as Array<string | number>));
  history.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  const historyNote =
    history.length > HISTORY_ROWS ? `<p class="note">${esc(`${history.length - HISTORY_ROWS} more list events are in the JSON form of this report.`)}</p>` : '';
  const selftestRows = Object.entries(r.selftests.byCategory).map(([c, v]) => [c, v.passed, v.failed, v.last ? `${v.last.result} at ${v.last.time}` : '']);
  return `<!DOCTYPE html>
<html lang="en" xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta charset="utf-8" />
<title>${esc(`safespot audit report ${r.period.from} – ${r.period.to}`)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>safespot audit report</h1>
${table(
  ['', ''],
  [
    ['Period from', r.period.from],
    ['Period to (exclusive)', r.period.to],
    ['Measured until', r.period.measuredUntil],
    ['Generated at', r.generatedAt],
    ['Journal', r.journal],
  ],
)}
<h2>Filtering active</h2>
${table(
  ['', ''],
  [
    ['Fraction of the period with filtering active', pct(f.activeFraction)],
    ['Active', dur(f.activeSeconds)],
    ['Running without an enforced policy', dur(f.inactiveSeconds)],
    ['Down (or no evidence of running)', dur(f.downSeconds)],
  ],
)}
<p class="note">${esc(f.note)}</p>
${table(['from', 'to', 'state', 'duration'], f.gaps.map((g) => [g.from, g.to, g.state, dur(g.seconds)]), 'filtering was active for the whole measured period')}
<h2>Blocked requests: ${esc(fmt(r.blockedRequests.total))}</h2>
${table(['category', 'blocked requests'], cat(r.blockedRequests.byCategory))}
<h2>Blocked images: ${esc(fmt(r.blockedImages.total))}</h2>
${table(['category', 'blocked images'], cat(r.blockedImages.byCategory))}
${table(['category', 'match type', 'blocked images'], r.blockedImages.byCategoryAndMatch.map((p) => [p.category, p.match, p.count]))}
<h2>Blocks per day (UTC)</h2>
<p class="key"><span style="background:#3b5b92"></span>requests<span style="background:#c0504d"></span>images</p>
${blocksChart(r.blocksPerDay)}
<h2>Monitored (would have been blocked)</h2>
${table(['category', 'requests', 'images'], mergeMonitored(r))}
<h2>Lists</h2>
<p class="note">Largest gap: the longest stretch without a successful load or refresh, counted from the last success before the period (or the period start) to the end of what was measured.</p>
${table(['list', 'loads', 'refreshes', 'failures', 'last success', 'largest gap', 'largest gap at'], listRows)}
${table(['time', 'list', 'event', 'detail'], history.slice(0, HISTORY_ROWS))}
${historyNote}
<h2>How the journal kept these events</h2>
${table(
  ['', ''],
  [
    ['Blocks kept as per-minute counts (in the figures above, without URL or client)', fmt(r.journalKeeping.aggregatedEvents)],
    ['Aggregate rows', fmt(r.journalKeeping.aggregateRows)],
    ...Object.entries(r.journalKeeping.aggregatedByReason).map(([k, n]) => [`  reason: ${k}`, fmt(n)]),
    ['Events that could not be written (in no figure above)', fmt(r.journalKeeping.lostEvents)],
    ...Object.entries(r.journalKeeping.lostByReason).map(([k, n]) => [`  reason: ${k}`, fmt(n)]),
  ],
)}
<p class="note">${esc(r.journalKeeping.note)}</p>
<h2>Self-tests: ${esc(fmt(r.selftests.passed))} passed, ${esc(fmt(r.selftests.failed))} failed</h2>
${table(['category', 'passed', 'failed', 'last result'], selftestRows)}
${table(['time', 'category', 'detail'], r.selftests.failures.map((x) => [x.time, x.category ?? '', x.detail ?? '']), 'no failed self-tests')}
</body>
</html>
`;
}

function mergeMonitored(r: Report): Array<Array<string | number>> {
  const keys = [...new Set([...Object.keys(r.monitored.requests.byCategory), ...Object.keys(r.monitored.images.byCategory)])];
  return keys.map((k) => [k, r.monitored.requests.byCategory[k] ?? 0, r.monitored.images.byCategory[k] ?? 0]);
}
