/**
 * audit/report-sign.ts: signing and verifying reports (issue 21, point 3). A signed json report
 * verifies, also re-indented; a changed figure, another key, a missing or mangled signature do not,
 * each with its reason; csv/html detached signatures cover the exact bytes; the note parser is strict
 * (every truncation and every single-byte change of a note is refused).
 */
import t from 'tap';
import { generateIdentity } from '../../audit/identity.js';
import {
  canonicalJson,
  contentDigest,
  detectFormat,
  formatReportNote,
  parseReportNote,
  signJsonReport,
  signReportFile,
  verifyReport,
  type ReportBasis,
  type SignInput,
} from '../../audit/report-sign.js';

const id = generateIdentity('safespot/venue-a');
const other = generateIdentity('safespot/venue-a');
const basis: ReportBasis = {
  from: Date.UTC(2026, 0, 1),
  to: Date.UTC(2026, 3, 1),
  generatedAt: Date.UTC(2026, 3, 1, 0, 5),
  journal: '/var/lib/safespot/journal.db',
  categories: ['adult', 'csam'],
  lists: ['a', 'b'],
  session: { open: true, lastAlive: Date.UTC(2026, 3, 1, 0, 4, 58) },
  site: { id: 'venue-a', name: 'Kafe Ërë' },
  generator: 'safespot 0.0.0-test',
};
const body: SignInput = { from: basis.from, to: basis.to, checkpoint: { size: 42, root: Buffer.alloc(32, 7), time: Date.UTC(2026, 3, 1, 0, 5), reason: 'report' }, basis };
const report = { period: { from: '2026-01-01T00:00:00.000Z' }, blockedRequests: { total: 3, byCategory: { adult: 3, csam: 0 } } };

t.test('canonical JSON sorts keys at every depth and drops undefined', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 'x' }], e: undefined }), '{"a":[{"c":"x","d":2}],"b":1}');
  t.equal(canonicalJson({ é: 1, z: 2, Z: 3 }), '{"Z":3,"z":2,"é":1}');
  t.throws(() => canonicalJson({ a: NaN }));
});

t.test('a signed json report verifies, re-indented too; an edit or another key does not', async (t) => {
  const text = signJsonReport(report, body, id);
  const ok = verifyReport({ text }, id);
  t.ok(ok.ok, JSON.stringify(ok));
  if (ok.ok) {
    t.equal(ok.format, 'json');
    t.same(ok.body.basis, basis);
    t.equal(ok.body.checkpoint?.size, 42);
  }
  const reindented = JSON.stringify(JSON.parse(text));
  t.ok(verifyReport({ text: reindented }, id).ok, 'whitespace is not content');
  const edited = text.replace('"adult": 3', '"adult": 4');
  t.not(edited, text);
  const bad = verifyReport({ text: edited }, id);
  t.notOk(bad.ok);
  t.match(bad, { reason: /changed after signing/ });
  t.match(verifyReport({ text }, other), { ok: false, reason: /no signature by safespot\/venue-a/ });
  t.match(verifyReport({ text: JSON.stringify(report) }, id), { ok: false, reason: /not signed/ });
  t.match(verifyReport({ text: text.slice(0, -10) }, id), { ok: false, reason: /does not parse/ });
});

t.test('csv and html: a detached signature over the exact bytes', async (t) => {
  for (const [format, text] of [
    ['csv', 'section,key,subkey,value\r\nblocked_requests,total,,3\r\n'],
    ['html', '<!DOCTYPE html>\n<html><body><td>3</td></body></html>\n'],
  ] as const) {
    t.equal(detectFormat(text), format);
    const sig = signReportFile(format, text, body, id);
    t.ok(verifyReport({ text, sig }, id).ok, format);
    const edited = text.replace('3', '4');
    t.match(verifyReport({ text: edited, sig }, id), { ok: false, reason: /changed after signing/ }, `${format}: a figure changed`);
    t.match(verifyReport({ text }, id), { ok: false, reason: /detached \.sig/ });
    t.match(verifyReport({ text, sig }, other), { ok: false, reason: /no signature by/ });
    t.match(verifyReport({ text, sig: signReportFile(format, text, body, other) }, id), { ok: false, reason: /no signature by/ });
    t.equal(contentDigest(format, text), contentDigest(format, `${text}`));
  }
  const csvSig = signReportFile('csv', 'section,key,subkey,value\r\n', body, id);
  t.match(verifyReport({ text: '<!DOCTYPE html>\n', sig: csvSig }, id), { ok: false, reason: /csv report, the file is html/ });
});

t.test('the note parser: round trip, every truncation and every one-byte change refused', async (t) => {
  const text = formatReportNote({ ...body, key: id.name, format: 'csv', content: `sha256:${'ab'.repeat(32)}` });
  const p = parseReportNote(text);
  t.ok(p.ok);
  if (p.ok) t.same(p.value.basis, basis);
  let accepted = 0;
  for (let i = 0; i < text.length; i++) if (parseReportNote(text.slice(0, i)).ok) accepted++;
  t.equal(accepted, 0, 'no truncation parses');
  // A changed byte either fails to parse or parses to a different body (never silently the same).
  const same = JSON.stringify(p.ok ? { ...p.value, checkpoint: { ...p.value.checkpoint, root: p.value.checkpoint?.root.toString('hex') } } : null);
  let silent = 0;
  for (let i = 0; i < text.length; i++) {
    const mutated = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 1) + text.slice(i + 1);
    const q = parseReportNote(mutated);
    if (q.ok && JSON.stringify({ ...q.value, checkpoint: { ...q.value.checkpoint, root: q.value.checkpoint?.root.toString('hex') } }) === same) silent++;
  }
  t.equal(silent, 0, 'no one-byte change parses to the same signature');
  // The signed note over it: any flipped byte fails verification.
  const sig = signReportFile('csv', 'section,key,subkey,value\r\n', body, id);
  let passed = 0;
  for (let i = 0; i < sig.length; i += 3) {
    const mutated = sig.slice(0, i) + String.fromCharCode(sig.charCodeAt(i) ^ 1) + sig.slice(i + 1);
    if (verifyReport({ text: 'section,key,subkey,value\r\n', sig: mutated, format: 'csv' }, id).ok) passed++;
  }
  t.equal(passed, 0, 'no mutated signature verifies');
});
