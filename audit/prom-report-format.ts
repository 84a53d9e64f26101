/**
 * The city report (audit/prom-report.ts) as JSON, CSV (long format, one figure a line, with the
 * venue as the first column and `(city)` for the total) and one self-contained HTML page (no scripts,
 * no external files): a table of venues, then per venue its restarts and gaps.
 */
import type { Figures, PromReport } from './prom-report.js';
import { csvCell } from './report.js';

export const CITY = '(city)';

export function promReportJson(r: PromReport): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

type Row = [string, string, string, string, string | number | null];

function figureRows(venue: string, f: Figures): Row[] {
  const rows: Row[] = [];
  const put = (section: string, total: number, by: Record<string, number>, sub = 'category') => {
    rows.push([venue, section, 'total', '', total]);
    for (const [k, n] of Object.entries(by).sort(([a], [b]) => a.localeCompare(b))) rows.push([venue, section, sub, k, n]);
  };
  put('blocked_requests', f.blockedRequests.total, f.blockedRequests.byCategory);
  put('monitored_requests', f.monitoredRequests.total, f.monitoredRequests.byCategory);
  put('blocked_images', f.blockedImages.total, f.blockedImages.byCategory);
  for (const [k, n] of Object.entries(f.blockedImages.byMatch).sort(([a], [b]) => a.localeCompare(b))) rows.push([venue, 'blocked_images', 'match', k, n]);
  put('monitored_images', f.monitoredImages.total, f.monitoredImages.byCategory);
  return rows;
}

/** venue,section,key,subkey,value (RFC 4180; cells defused for spreadsheets as in the journal report). */
export function promReportCsv(r: PromReport): string {
  const rows: Row[] = [
    [CITY, 'period', 'from', '', r.period.from],
    [CITY, 'period', 'to', '', r.period.to],
    [CITY, 'period', 'measured_until', '', r.period.measuredUntil],
    [CITY, 'period', 'generated_at', '', r.generatedAt],
  ];
  for (const v of r.venues) {
    rows.push(...figureRows(v.venue, v));
    rows.push([v.venue, 'counter_resets', 'total', '', v.counterResets]);
    for (const s of v.restarts) rows.push([v.venue, 'restart', s.instance, '', s.at]);
    for (const i of v.instances) {
      rows.push([v.venue, 'instance', i.instance, 'scrape_interval_seconds', i.scrapeIntervalSeconds]);
      rows.push([v.venue, 'instance', i.instance, 'covered_fraction', i.coveredFraction]);
      rows.push([v.venue, 'instance', i.instance, 'filtering_active_fraction', i.filteringActiveFraction]);
    }
    for (const g of v.gaps) rows.push([v.venue, `gap_${g.kind}`, g.instance, `${g.from}/${g.to}`, g.seconds]);
  }
  rows.push(...figureRows(CITY, r.city));
  rows.push([CITY, 'venues', 'total', '', r.city.venues], [CITY, 'counter_resets', 'total', '', r.city.counterResets]);
  rows.push([CITY, 'venues_with_gaps', 'total', '', r.city.venuesWithGaps.length]);
  const lines = [['venue', 'section', 'key', 'subkey', 'value'], ...rows].map((row) => row.map((c) => csvCell(c)).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

const esc = (s: string | number | null): string =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const byCat = (m: Record<string, number>): string =>
  Object.entries(m)
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${esc(k)} ${n}`)
    .join(', ');

export function promReportHtml(r: PromReport): string {
  const row = (name: string, f: Figures, extra: string): string =>
    `<tr><th scope="row">${esc(name)}</th><td>${f.blockedRequests.total}</td><td>${byCat(f.blockedRequests.byCategory)}</td>` +
    `<td>${f.blockedImages.total}</td><td>${f.monitoredRequests.total + f.monitoredImages.total}</td>${extra}</tr>`;
  const venues = r.venues
    .map((v) => {
      const active = v.instances.map((i) => i.filteringActiveFraction).filter((x): x is number => x !== null);
      const pct = active.length ? `${(Math.min(...active) * 100).toFixed(1)} %` : '–';
      return row(v.venue, v, `<td>${v.restarts.length}</td><td>${v.gaps.length ? `${v.gaps.length} (${v.gaps.reduce((a, g) => a + g.seconds, 0).toFixed(0)} s)` : 'none'}</td><td>${pct}</td>`);
    })
    .join('\n');
  const details = r.venues
    .filter((v) => v.gaps.length || v.restarts.length)
    .map(
      (v) =>
        `<h3>${esc(v.venue)}</h3><ul>` +
        v.restarts.map((s) => `<li>restart of ${esc(s.instance)} at ${esc(s.at)}</li>`).join('') +
        v.gaps.map((g) => `<li>${esc(g.kind)}: ${esc(g.instance)} ${esc(g.from)} – ${esc(g.to)} (${g.seconds} s)</li>`).join('') +
        '</ul>',
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>safespot city report ${esc(r.period.from)} – ${esc(r.period.to)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em;text-align:left}tfoot th,tfoot td{font-weight:bold}</style>
</head><body>
<h1>City report</h1>
<p>Period ${esc(r.period.from)} to ${esc(r.period.to)} (measured until ${esc(r.period.measuredUntil)}), from ${esc(r.source.prometheus)}, venues by label <code>${esc(r.source.venueLabel)}</code>. Generated ${esc(r.generatedAt)}.</p>
<table><thead><tr><th>venue</th><th>blocked requests</th><th>by category</th><th>blocked images</th><th>monitored</th><th>restarts</th><th>gaps</th><th>filtering active (by samples)</th></tr></thead>
<tbody>
${venues}
</tbody><tfoot>${row(`city (${r.city.venues} venues)`, r.city, `<td>${r.city.restarts}</td><td>${r.city.venuesWithGaps.length} venue(s)</td><td></td>`)}</tfoot></table>
<h2>Restarts and gaps</h2>
${details || '<p>None.</p>'}
<p>${esc(r.note)}</p>
</body></html>
`;
}
