/**
 * The cross-venue report's gaps do not depend on where its windows fall. Samples of `up` at exact
 * times (1 s apart, as the city-report test's scrapes) are backfilled into a real Prometheus with
 * promtool, with outages of several lengths starting at every offset against 3 s windows; the report
 * read in 3 s windows, in 7 s windows and in one window must list each outage as one gap from the
 * last sample before it to the first one after it. (With real scrapes the offsets fall where they
 * fall: city-report.test once read 11 s in 3 s windows where one window read 12 s, because a missing
 * stretch carried across a window edge was dropped when what was left of it was under the tolerance.)
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPromReport } from '../../audit/prom-report.js';
import { freePort, startProm } from '../helpers/prom-process.js';

const have = spawnSync('promtool', ['--version']).status === 0 && spawnSync('prometheus', ['--version']).status === 0;

t.test('gaps over window edges: the same gaps in 3 s, 7 s and one window, equal to the outages', { skip: have ? false : 'prometheus/promtool not installed: run `bash test/setup-system.sh`' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-gaps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A day ago, on a whole hour, so the backfilled block is old enough to be loaded as a block.
  const HOUR = 3_600_000;
  const from = Math.floor((Date.now() - 24 * HOUR) / HOUR) * HOUR;
  // Outages: [start offset ms from `from`, length in lost samples]. Starts run over every 0.5 s of a
  // 3 s window edge (the samples sit at whole seconds + 250 ms, so edges fall between samples and on
  // their tolerance), lengths from 3 to 12 lost samples (a lost sample or two is within tolerance).
  const outages: Array<{ first: number; lost: number }> = [];
  let at = 20;
  for (let phase = 0; phase < 6; phase++) {
    for (const lost of [3, 4, 5, 7, 12]) {
      outages.push({ first: at + phase, lost });
      at += lost + 20 + (phase % 3);
    }
  }
  const seconds = at + 30;
  const to = from + seconds * 1000;
  const skipped = new Set(outages.flatMap((o) => Array.from({ length: o.lost }, (_, i) => o.first + i)));
  const lines = ['# TYPE up gauge'];
  for (let s = 0; s < seconds; s++) {
    if (!skipped.has(s)) lines.push(`up{instance="a.test:9090",job="safespot",venue="venue-x"} 1 ${((from + s * 1000 + 250) / 1000).toFixed(3)}`);
  }
  lines.push('# EOF', '');
  writeFileSync(join(dir, 'up.om'), lines.join('\n'));
  const made = spawnSync('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', join(dir, 'up.om'), join(dir, 'data')], { encoding: 'utf8' });
  t.equal(made.status, 0, `promtool made the block: ${made.stderr}`);
  writeFileSync(join(dir, 'prom.yml'), 'global: {}\n');
  const port = await freePort();
  const prom = await startProm([`--config.file=${join(dir, 'prom.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, '--storage.tsdb.retention.time=30d'], port);
  t.teardown(() => prom.stop());

  // The truth: each outage runs from the sample before it to the sample after it.
  const want = outages.map((o) => [from + (o.first - 1) * 1000 + 250, from + (o.first + o.lost) * 1000 + 250]);
  const src = { url: `http://127.0.0.1:${port}`, venueLabel: 'venue' };
  for (const windowMs of [3000, 7000, seconds * 1000]) {
    const report = await buildPromReport(src, { from, to, now: to + 60_000, windowMs });
    const v = report.venues.find((x) => x.venue === 'venue-x');
    t.ok(v, `${windowMs} ms windows: the venue is found`);
    const got = (v?.gaps ?? []).filter((g) => g.kind === 'missing').map((g) => [Date.parse(g.from), Date.parse(g.to)]);
    t.same(got, want, `${windowMs} ms windows: ${outages.length} outages, each one gap from the sample before to the sample after`);
    t.same((v?.gaps ?? []).filter((g) => g.kind !== 'missing'), [], `${windowMs} ms windows: nothing else`);
    t.equal(v?.instances[0]?.scrapeIntervalSeconds, 1, `${windowMs} ms windows: the interval read from the samples`);
  }
});
