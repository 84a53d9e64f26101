/**
 * Signed period reports (issue 21, point 3): how a report is signed by the appliance's key and how
 * a signature is checked offline. Pure but for node:crypto: text in, text out, no fs, no clock.
 *
 * STABLE EXPORTS (other commands, e.g. `audit merge`, build on these; change only with care):
 * - `REPORT_NOTE_TAG`, `ReportFormat`, `REPORT_FORMATS`, `SIG_SUFFIX`
 * - `ReportBasis`: what a report was computed from (period, report time, the journal's session at
 *   that time, configured categories and lists, language); enough to compute it again.
 * - `ReportSignatureBody`: what the signature says (key, format, content digest, period, covering
 *   checkpoint, basis); `formatReportNote` / `parseReportNote` write and read its note text.
 * - `canonicalJson(value)`: RFC 8785 (JCS) style: object keys sorted by UTF-16 code units, no
 *   whitespace, numbers and strings as ECMAScript JSON.stringify writes them.
 * - `contentDigest(format, text)`: `sha256:<hex>` of what is signed: for json the canonical JSON of
 *   the report object without its `signature` member (re-indenting the file keeps it valid, a changed
 *   value does not); for csv and html the file's exact bytes.
 * - `signJsonReport(report, body, identity)`: the report's JSON text with the signature embedded as
 *   its `signature` member (a signed note string).
 * - `signReportFile(format, text, body, identity)`: the detached signature (the `.sig` file beside a
 *   csv or html report): a signed note.
 * - `verifyReport({ text, sig?, format? }, key)`: `{ ok: true, format, body, json? }` when a signature
 *   by the key verifies and the digest it signs is the content's; else `{ ok: false, reason }` with
 *   the first thing that does not hold.
 * - `detectFormat(text)`: json, csv or html from the content (null when none).
 *
 * The signature is a c2sp.org/signed-note (the form the journal's checkpoints use, audit/identity.ts)
 * whose text is, line by line:
 *
 *     safespot-report/1
 *     key <key name>
 *     format <json|csv|html>
 *     content sha256:<64 hex>
 *     period <from ISO 8601> <to ISO 8601>
 *     checkpoint <tree size> <base64 root> <time ISO 8601> <reason> | checkpoint none
 *     basis <canonical JSON of ReportBasis>
 *
 * The covering checkpoint's own signed note travels in the report (json `checkpoint.note`, csv
 * `checkpoint,note`, html "Verification"); the report signature vouches for its size and root, which
 * is what `audit verify EARLIER LATER` and `--journal` need.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { createHash } from 'node:crypto';
import { signNote, verifyNote, type Identity, type PublicIdentity } from './identity.js';

export const REPORT_NOTE_TAG = 'safespot-report/1';
export const REPORT_FORMATS = ['json', 'csv', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];
/** The detached signature of `report.csv` is `report.csv.sig`. */
export const SIG_SUFFIX = '.sig';

/** What a report was computed from: with the journal's rows in the covered tree, enough to compute it again. */
export interface ReportBasis {
  /** Period, Unix ms, [from, to). */
  from: number;
  to: number;
  /** When the report was made (Unix ms). */
  generatedAt: number;
  /** The journal's path as the report names it (informational; the verifier's copy may be elsewhere). */
  journal: string;
  /** Configured categories and list ids (shown with zeros). */
  categories: string[];
  lists: string[];
  /** The journal's session when the report was made (the state tables are not leaves of the tree). */
  session: { open: boolean; lastAlive: number | null };
  /** The venue, from the config. */
  site: { id: string; name: string | null };
  /** html only: the language of the page. */
  lang?: string;
  /** The file name the report was written to (the html shows the verify command with it). */
  file?: string;
  /** The safespot version that made the report (its csv and html renderings are that version's). */
  generator: string;
}

export interface ReportCheckpointRef {
  size: number;
  /** 32 bytes. */
  root: Buffer;
  /** When the checkpoint was signed (Unix ms) and why (audit/checkpoint.ts CHECKPOINT_REASONS). */
  time: number;
  reason: string;
}

export interface ReportSignatureBody {
  key: string;
  format: ReportFormat;
  /** `sha256:<hex>` of the content (see contentDigest). */
  content: string;
  from: number;
  to: number;
  checkpoint: ReportCheckpointRef | null;
  basis: ReportBasis;
}

/** RFC 8785-style canonical JSON (sorted keys, no whitespace). Throws on values JSON cannot hold. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError('canonical JSON holds only finite numbers');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    // JCS sorts by UTF-16 code units: the default sort of JS strings.
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new RangeError(`canonical JSON cannot hold a ${typeof value}`);
}

const sha256 = (data: string | Uint8Array): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** The JSON report object without its signature member. */
function unsigned(report: Record<string, unknown>): Record<string, unknown> {
  const { signature: _signature, ...rest } = report;
  return rest;
}

/**
 * `sha256:<hex>` of what a report signature covers: json, the canonical JSON of the parsed report
 * without `signature` (throws on text that is not a JSON object); csv and html, the UTF-8 bytes.
 */
export function contentDigest(format: ReportFormat, text: string): string {
  if (format !== 'json') return sha256(Buffer.from(text, 'utf8'));
  const parsed = JSON.parse(text) as unknown;
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new RangeError('a json report is one JSON object');
  return sha256(canonicalJson(unsigned(parsed as Record<string, unknown>)));
}

const isoMs = (ms: number): string => new Date(ms).toISOString();

export function formatReportNote(b: ReportSignatureBody): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(b.content)) throw new RangeError('content is sha256:<64 hex>');
  if (b.checkpoint && !/^[a-z]+$/.test(b.checkpoint.reason)) throw new RangeError('a checkpoint reason is a lower-case word');
  const cp = b.checkpoint
    ? `checkpoint ${b.checkpoint.size} ${b.checkpoint.root.toString('base64')} ${isoMs(b.checkpoint.time)} ${b.checkpoint.reason}`
    : 'checkpoint none';
  return [REPORT_NOTE_TAG, `key ${b.key}`, `format ${b.format}`, `content ${b.content}`, `period ${isoMs(b.from)} ${isoMs(b.to)}`, cp, `basis ${canonicalJson(b.basis)}`, ''].join('\n');
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
function parseIsoMs(s: string | undefined): number | null {
  if (!s || !ISO_MS.test(s)) return null;
  const ms = Date.parse(s);
  return Number.isFinite(ms) && isoMs(ms) === s ? ms : null;
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

function parseBasis(text: string): Parsed<ReportBasis> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'the basis line is not JSON' };
  }
  const b = v as Partial<ReportBasis> | null;
  const s = b?.session as Partial<ReportBasis['session']> | undefined;
  const site = b?.site as Partial<ReportBasis['site']> | undefined;
  if (
    !b ||
    typeof b !== 'object' ||
    !isMs(b.from) ||
    !isMs(b.to) ||
    !isMs(b.generatedAt) ||
    typeof b.journal !== 'string' ||
    !isStrings(b.categories) ||
    !isStrings(b.lists) ||
    !s ||
    typeof s.open !== 'boolean' ||
    !(s.lastAlive === null || isMs(s.lastAlive)) ||
    !site ||
    typeof site.id !== 'string' ||
    !(site.name === null || typeof site.name === 'string') ||
    (b.lang !== undefined && typeof b.lang !== 'string') ||
    (b.file !== undefined && typeof b.file !== 'string') ||
    typeof b.generator !== 'string'
  ) {
    return { ok: false, reason: 'the basis line lacks a field or has one of the wrong type' };
  }
  return { ok: true, value: b as ReportBasis };
}

/** Read a report note's (already verified) text. Strict: exactly the lines formatReportNote writes. */
export function parseReportNote(text: string): Parsed<ReportSignatureBody> {
  const lines = text.split('\n');
  if (lines.length !== 8 || lines[7] !== '') return { ok: false, reason: 'a report signature has seven lines' };
  if (lines[0] !== REPORT_NOTE_TAG) return { ok: false, reason: `it is not a ${REPORT_NOTE_TAG} signature` };
  const key = /^key (\S+)$/.exec(lines[1]!)?.[1];
  if (!key) return { ok: false, reason: 'no key line' };
  const format = /^format (json|csv|html)$/.exec(lines[2]!)?.[1] as ReportFormat | undefined;
  if (!format) return { ok: false, reason: 'no format line' };
  const content = /^content (sha256:[0-9a-f]{64})$/.exec(lines[3]!)?.[1];
  if (!content) return { ok: false, reason: 'no content line' };
  const period = /^period (\S+) (\S+)$/.exec(lines[4]!);
  const from = parseIsoMs(period?.[1]);
  const to = parseIsoMs(period?.[2]);
  if (from === null || to === null) return { ok: false, reason: 'the period line is not two ISO 8601 UTC times' };
  let checkpoint: ReportCheckpointRef | null = null;
  if (lines[5] !== 'checkpoint none') {
    const m = /^checkpoint (0|[1-9][0-9]{0,15}) (\S+) (\S+) ([a-z]+)$/.exec(lines[5]!);
    const root = m ? Buffer.from(m[2]!, 'base64') : null;
    const time = parseIsoMs(m?.[3]);
    if (!m || !root || root.length !== 32 || root.toString('base64') !== m[2] || !Number.isSafeInteger(Number(m[1])) || time === null) {
      return { ok: false, reason: 'the checkpoint line is not "checkpoint <size> <base64 root> <time> <reason>"' };
    }
    checkpoint = { size: Number(m[1]), root, time, reason: m[4]! };
  }
  if (!lines[6]!.startsWith('basis ')) return { ok: false, reason: 'no basis line' };
  const basis = parseBasis(lines[6]!.slice('basis '.length));
  if (!basis.ok) return basis;
  if (basis.value.from !== from || basis.value.to !== to) return { ok: false, reason: 'the basis and the period line disagree' };
  return { ok: true, value: { key, format, content, from, to, checkpoint, basis: basis.value } };
}

/** What the caller says about a report being signed (the digest and key name are filled in here). */
export type SignInput = Omit<ReportSignatureBody, 'content' | 'key' | 'format'>;

/** The JSON text of `report` with the signature embedded as its `signature` member. */
export function signJsonReport(report: Record<string, unknown>, body: SignInput, identity: Identity): string {
  const content = unsigned(report);
  const digest = sha256(canonicalJson(content));
  const note = signNote(formatReportNote({ ...body, key: identity.name, format: 'json', content: digest }), identity);
  return `${JSON.stringify({ ...content, signature: note }, null, 2)}\n`;
}

/** The detached signature (`.sig`) of a csv or html report's exact text. */
export function signReportFile(format: Exclude<ReportFormat, 'json'>, text: string, body: SignInput, identity: Identity): string {
  return signNote(formatReportNote({ ...body, key: identity.name, format, content: contentDigest(format, text) }), identity);
}

/** json, csv or html, from the content; null when it is none of them. */
export function detectFormat(text: string): ReportFormat | null {
  const head = text.replace(/^\uFEFF/, '').trimStart();
  if (head.startsWith('{')) return 'json';
  if (/^<!DOCTYPE html/i.test(head) || head.startsWith('<html')) return 'html';
  if (head.startsWith('section,key,subkey,value')) return 'csv';
  return null;
}

export type ReportCheck =
  | { ok: true; format: ReportFormat; body: ReportSignatureBody; /** The parsed report (json only). */ json: Record<string, unknown> | null }
  | { ok: false; reason: string };

/**
 * Verify a report's signature against a key: a json report's embedded `signature`, or the detached
 * `sig` of a csv or html report. Offline; the first thing that does not hold is the reason.
 */
export function verifyReport(input: { text: string; sig?: string | null; format?: ReportFormat }, key: PublicIdentity): ReportCheck {
  const format = input.format ?? detectFormat(input.text);
  if (!format) return { ok: false, reason: 'the file is not a safespot report (json, csv or html)' };
  let json: Record<string, unknown> | null = null;
  let note: string | null;
  if (format === 'json') {
    try {
      const v = JSON.parse(input.text) as unknown;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return { ok: false, reason: 'the json report is not one JSON object' };
      json = v as Record<string, unknown>;
    } catch (err) {
      return { ok: false, reason: `the json report does not parse: ${(err as Error).message}` };
    }
    const s = json.signature;
    if (s === undefined || s === null) return { ok: false, reason: 'the report is not signed (no "signature" member)' };
    if (typeof s !== 'string') return { ok: false, reason: 'the report\'s "signature" is not a signed note string' };
    note = s;
  } else {
    note = input.sig ?? null;
    if (note === null) return { ok: false, reason: `a ${format} report is signed by a detached ${SIG_SUFFIX} file beside it, and there is none` };
  }
  const v = verifyNote(note, key);
  if (!v.ok) return { ok: false, reason: `the report signature: ${v.reason}` };
  const body = parseReportNote(v.text);
  if (!body.ok) return { ok: false, reason: `the report signature: ${body.reason}` };
  if (body.value.key !== key.name) return { ok: false, reason: `the signature names the key "${body.value.key}", not "${key.name}"` };
  if (body.value.format !== format) return { ok: false, reason: `the signature is of a ${body.value.format} report, the file is ${format}` };
  const digest = format === 'json' ? sha256(canonicalJson(unsigned(json!))) : contentDigest(format, input.text);
  if (digest !== body.value.content) {
    return { ok: false, reason: `the content is not what was signed (signed ${body.value.content}, the file gives ${digest}): the report was changed after signing` };
  }
  return { ok: true, format, body: body.value, json };
}
