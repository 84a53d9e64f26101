/**
 * fetchSource against a real HTTPS origin on 127.0.0.1 (test CA): conditional requests, integrity
 * (SHA-256, Ed25519 detached signatures), size bound, whole-request deadline, truncation, retries,
 * a vanished origin, credentials that never show in errors, redirects, file sources.
 */
import t from 'tap';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signList } from '../../appliance/lists/signature.js';
import { validateConfig } from '../../appliance/config.js';
import {
  createSourceDispatcher,
  fetchOptionsFromConfig,
  fetchSource,
  ListSourceError,
  prepareSource,
  prepareSources,
  type FetchOptions,
  type PreparedSource,
} from '../../appliance/lists/source.js';
import { SafespotError } from '../../policy/errors.js';
import { startOrigin } from '../helpers/origin.js';

const dir = mkdtempSync(join(tmpdir(), 'safespot-list-source-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const origin = await startOrigin();
t.teardown(() => origin.close());
const caFile = join(dir, 'origin-ca.pem');
writeFileSync(caFile, origin.caPem);
const dispatcher = createSourceDispatcher({ caPem: origin.caPem });
t.teardown(() => dispatcher.close());

/** A synthetic domains list of n entries under .test. */
const listOf = (n: number, tag = 'a'): string => Array.from({ length: n }, (_, i) => `host-${tag}-${i}.blocked.test`).join('\n') + '\n';
const sha = (s: string | Uint8Array): string => createHash('sha256').update(s).digest('hex');
const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

/** A prepared source from a config document (the way serve gets one). */
function source(list: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): PreparedSource {
  const cfg = validateConfig({ lists: [{ id: 'l1', category: 'adult', kind: 'domains', ...list }] }, dir);
  return prepareSource(cfg.lists[0]!, env);
}

const opts = (more: Partial<FetchOptions> = {}): FetchOptions => ({ timeoutMs: 5000, retries: 0, dispatcher, backoffBaseMs: 20, backoffMaxMs: 100, ...more });

async function refusal(p: Promise<unknown>): Promise<ListSourceError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ListSourceError) return err;
    throw err;
  }
  throw new Error('expected the fetch to be refused');
}

t.test('first fetch, then 304 with If-None-Match, then an updated body', async (t) => {
  const v1 = listOf(50, 'v1');
  origin.put('/etag.txt', v1);
  const src = source({ source: origin.url('/etag.txt') });
  const first = await fetchSource(src, opts());
  t.equal(first.status, 'updated');
  if (first.status !== 'updated') return;
  t.equal(text(first.body), v1, 'body as served');
  t.equal(first.sha256, sha(v1));
  t.ok(first.etag, 'ETag kept');

  const second = await fetchSource(src, opts(), { etag: first.etag });
  t.same(second, { status: 'not-modified' });
  const reqs = origin.requestsFor('/etag.txt');
  t.equal(reqs.at(-1)?.headers['if-none-match'], first.etag, 'conditional header sent');
  t.equal(reqs.at(-1)?.status, 304);
  t.equal(reqs.at(-1)?.bytes, 0, 'the body was not sent again');

  const v2 = listOf(60, 'v2');
  origin.put('/etag.txt', v2);
  const third = await fetchSource(src, opts(), { etag: first.etag });
  t.equal(third.status, 'updated');
  if (third.status === 'updated') {
    t.equal(text(third.body), v2, 'the new body');
    t.not(third.etag, first.etag);
  }
});

t.test('Last-Modified / If-Modified-Since without an ETag', async (t) => {
  const lm = new Date('2024-05-01T10:00:00Z');
  origin.put('/lm.txt', listOf(5), { etag: false, lastModified: lm });
  const src = source({ source: origin.url('/lm.txt') });
  const first = await fetchSource(src, opts());
  t.equal(first.status, 'updated');
  if (first.status !== 'updated') return;
  t.equal(first.etag, undefined);
  t.equal(first.lastModified, lm.toUTCString());
  const second = await fetchSource(src, opts(), { lastModified: first.lastModified });
  t.same(second, { status: 'not-modified' });
  t.equal(origin.requestsFor('/lm.txt').at(-1)?.headers['if-modified-since'], lm.toUTCString());
});

t.test('expected SHA-256: a match is accepted, anything else refused as checksum', async (t) => {
  const body = listOf(10);
  origin.put('/sha.txt', body);
  const good = await fetchSource(source({ source: origin.url('/sha.txt'), sha256: sha(body).toUpperCase() }), opts());
  t.equal(good.status, 'updated', 'matching sha256 (any case)');
  const err = await refusal(fetchSource(source({ source: origin.url('/sha.txt'), sha256: sha('something else') }), opts()));
  t.equal(err.reason, 'checksum');
  t.equal(err.code, 'ERR_LIST_INTEGRITY');
  t.match(err.message, /SHA-256/);
});

t.test('bare Ed25519 signatures (bareSignature: true): good (raw and base64) accepted; wrong, garbled or missing refused', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const keyFile = join(dir, 'list.pub.pem');
  writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const body = listOf(20, 'signed');
  const sig = sign(null, Buffer.from(body), privateKey);

  origin.put('/signed.txt', body);
  origin.put('/signed.txt.sig', sig);
  const src = source({ source: origin.url('/signed.txt'), publicKey: keyFile, bareSignature: true });
  const ok = await fetchSource(src, opts());
  t.equal(ok.status, 'updated', 'raw 64-byte signature');
  const strict = await refusal(fetchSource(source({ source: origin.url('/signed.txt'), publicKey: keyFile }), opts()));
  t.equal(strict.reason, 'signature', 'without bareSignature a bare signature is refused');
  t.match(strict.message, /bare signature, which names no list and no version/);

  origin.put('/signed.txt.sig', `${sig.toString('base64')}\n`);
  t.equal((await fetchSource(src, opts())).status, 'updated', 'base64 signature');

  origin.put('/signed.txt.sig', sign(null, Buffer.from(body), other.privateKey));
  let err = await refusal(fetchSource(src, opts()));
  t.equal(err.reason, 'signature', 'signed by another key');
  t.equal(err.code, 'ERR_LIST_INTEGRITY');

  origin.put('/signed.txt.sig', sig);
  origin.put('/signed.txt', body.replace('signed-3', 'signed-x'));
  err = await refusal(fetchSource(src, opts()));
  t.equal(err.reason, 'signature', 'body changed after signing');

  origin.put('/signed.txt', body);
  origin.put('/signed.txt.sig', 'not a signature');
  err = await refusal(fetchSource(src, opts()));
  t.equal(err.reason, 'signature', 'garbled signature');
  t.match(err.message, /not 64 bytes/);

  origin.remove('/signed.txt.sig');
  err = await refusal(fetchSource(src, opts()));
  t.equal(err.reason, 'signature', 'missing signature');
  t.match(err.message, /HTTP 404/);

  const rsaFile = join(dir, 'rsa.pub.pem');
  writeFileSync(rsaFile, generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }));
  t.throws(() => source({ source: origin.url('/signed.txt'), publicKey: rsaFile }), /not Ed25519/, 'a non-Ed25519 key is a config error');
});

t.test('size bound: a declared length over the bound, and a chunked body cut off mid-stream', async (t) => {
  origin.put('/big.txt', Buffer.alloc(5000, 0x61));
  let err = await refusal(fetchSource(source({ source: origin.url('/big.txt'), maxBytes: 1000 }), opts()));
  t.equal(err.reason, 'too_large');
  t.match(err.message, /Content-Length 5000/);

  origin.put('/huge.txt', Buffer.alloc(8 * 1024 * 1024, 0x62), { chunked: true });
  err = await refusal(fetchSource(source({ source: origin.url('/huge.txt'), maxBytes: 64 * 1024 }), opts()));
  t.equal(err.reason, 'too_large');
  t.match(err.message, /reading stopped/);
  // The origin never finished sending: the client hung up at the bound.
  await new Promise((r) => setTimeout(r, 50));
  t.equal(origin.requestsFor('/huge.txt').at(-1)?.completed, false, 'the 8 MiB response was not read to the end');
});

t.test('a trickling origin is cut off by the whole-request deadline', async (t) => {
  origin.put('/slow.txt', listOf(200), { trickle: { bytes: 10, everyMs: 20 } });
  const err = await refusal(fetchSource(source({ source: origin.url('/slow.txt') }), opts({ timeoutMs: 500 })));
  t.equal(err.reason, 'timeout');
  t.match(err.message, /within 500 ms/);
  t.equal(origin.requestsFor('/slow.txt').at(-1)?.completed, false, 'the trickle never completed');
});

t.test('a body shorter than its Content-Length is refused', async (t) => {
  origin.put('/trunc.txt', listOf(100), { truncateBy: 100 });
  const err = await refusal(fetchSource(source({ source: origin.url('/trunc.txt') }), opts()));
  t.equal(err.reason, 'http');
  t.equal(err.code, 'ERR_LIST_READ');
});

t.test('500s are retried with back-off; a 404 is not', async (t) => {
  const body = listOf(7);
  origin.put('/flaky.txt', body, { failNext: 2 });
  const retries: Array<[number, number]> = [];
  const res = await fetchSource(source({ source: origin.url('/flaky.txt') }), opts({ retries: 3, onRetry: (e, n, d) => retries.push([n, d]) }));
  t.equal(res.status, 'updated', 'third attempt succeeds');
  t.same(origin.requestsFor('/flaky.txt').map((r) => r.status), [500, 500, 200]);
  t.same(retries.map(([n]) => n), [1, 2]);
  t.ok(retries.every(([n, d]) => d >= (20 * 2 ** (n - 1)) / 2 && d <= 20 * 2 ** (n - 1)), `delays within the jittered back-off: ${JSON.stringify(retries)}`);

  origin.put('/down.txt', body, { failNext: 10 });
  const err = await refusal(fetchSource(source({ source: origin.url('/down.txt') }), opts({ retries: 1 })));
  t.equal(err.reason, 'http');
  t.match(err.message, /HTTP 500/);
  t.equal(origin.requestsFor('/down.txt').length, 2, 'one try and one retry');

  const notFound = await refusal(fetchSource(source({ source: origin.url('/nothing-here.txt') }), opts({ retries: 3 })));
  t.equal(notFound.reason, 'http');
  t.equal(origin.requestsFor('/nothing-here.txt').length, 1, '404 not retried');
});

t.test('a vanished origin is refused (connection refused), and retried first', async (t) => {
  const gone = await startOrigin({ ca: origin.ca });
  t.teardown(() => gone.close());
  gone.put('/list.txt', listOf(3));
  const src = source({ source: gone.url('/list.txt') });
  t.equal((await fetchSource(src, opts())).status, 'updated');
  await gone.vanish();
  const retried: number[] = [];
  const err = await refusal(fetchSource(src, opts({ retries: 2, onRetry: (_e, n) => retried.push(n) })));
  t.equal(err.reason, 'http');
  t.match(err.message, /ECONNREFUSED|closed|refused/i);
  t.same(retried, [1, 2]);
});

t.test('TLS is verified: without the origin CA the fetch is refused', async (t) => {
  origin.put('/tls.txt', listOf(3));
  const plain = createSourceDispatcher();
  t.teardown(() => plain.close());
  const err = await refusal(fetchSource(source({ source: origin.url('/tls.txt') }), opts({ dispatcher: plain })));
  t.equal(err.reason, 'http');
  t.match(err.message, /certificate/i);
});

t.test('credentials: env: and file: header values reach the origin and appear in no error', async (t) => {
  const secret = 'tok-3f9a1c77e2b54d0c9e8f';
  const fileSecret = 'filetok-81b2c3d4e5f60718';
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${fileSecret}\n`);
  const env = { SAFESPOT_TEST_TOKEN: secret };
  const listDoc = (path: string) => ({
    source: `${origin.url(path)}?key=${secret}`,
    headers: { Authorization: 'env:SAFESPOT_TEST_TOKEN', 'X-Api-Key': `file:${tokenFile}` },
  });
  origin.put('/private.txt', listOf(4));
  const ok = await fetchSource(source(listDoc('/private.txt'), env), opts());
  t.equal(ok.status, 'updated');
  const seen = origin.requestsFor('/private.txt').at(-1)!;
  t.equal(seen.headers.authorization, secret, 'env: value sent');
  t.equal(seen.headers['x-api-key'], fileSecret, 'file: value sent (trimmed)');

  const errors: ListSourceError[] = [];
  origin.put('/private-500.txt', listOf(4), { failNext: 5 });
  errors.push(await refusal(fetchSource(source(listDoc('/private-500.txt'), env), opts({ retries: 1 }))));
  origin.put('/private-slow.txt', listOf(100), { trickle: { bytes: 5, everyMs: 50 } });
  errors.push(await refusal(fetchSource(source(listDoc('/private-slow.txt'), env), opts({ timeoutMs: 300 }))));
  origin.put('/private-sum.txt', listOf(4));
  errors.push(await refusal(fetchSource(source({ ...listDoc('/private-sum.txt'), sha256: sha('x') }, env), opts())));
  const gone = await startOrigin({ ca: origin.ca });
  const goneUrl = gone.url('/x.txt');
  await gone.vanish();
  errors.push(await refusal(fetchSource(source({ ...listDoc('/x'), source: `${goneUrl}?key=${secret}` }, env), opts())));
  for (const e of errors) {
    const all = `${e.message}\n${e.stack}\n${JSON.stringify(e)}\n${e.details.join('\n')}`;
    t.notOk(all.includes(secret), `no env secret in: ${e.message}`);
    t.notOk(all.includes(fileSecret), `no file secret in: ${e.message}`);
  }
  t.same(errors.map((e) => e.reason), ['http', 'timeout', 'checksum', 'http']);

  // A missing variable is a config error that names the variable, not a value.
  try {
    prepareSources(validateConfig({ lists: [{ id: 'p', category: 'adult', kind: 'domains', ...listDoc('/p') }] }, dir).lists, {});
    t.fail('expected a config error');
  } catch (err) {
    t.ok(err instanceof SafespotError && err.code === 'ERR_CONFIG_INVALID');
    const all = `${(err as SafespotError).message}\n${(err as SafespotError).details.join('\n')}`;
    t.match(all, /SAFESPOT_TEST_TOKEN is not set/);
    t.notOk(all.includes(secret));
  }
});

t.test('signed statements name the list and a version: no swap, no rollback (issue 22, finding 10)', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const keyFile = join(dir, 'statement.pub.pem');
  writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const body = listOf(30, 'hotline');
  const otherBody = listOf(30, 'adult');
  const put = (path: string, b: string, sig: string | Buffer): void => {
    origin.put(path, b);
    origin.put(`${path}.sig`, sig);
  };
  const src = (path: string, more: Record<string, unknown> = {}) => source({ source: origin.url(path), publicKey: keyFile, ...more });

  put('/hotline.txt', body, signList(Buffer.from(body), 'l1', 100, privateKey));
  const ok = await fetchSource(src('/hotline.txt'), opts());
  t.equal(ok.status, 'updated', 'a statement for this list verifies');
  t.equal(ok.status === 'updated' ? ok.signedVersion : null, 100, 'and its version is returned');
  const named = await fetchSource(src('/hotline.txt', { signedName: 'l1' }), opts());
  t.equal(named.status, 'updated', 'signedName set to the same name');

  const cases: [string, string, string | Buffer, Record<string, unknown>, RegExp, { version: number; sha256: string }?][] = [
    ['another list\'s body and statement (a swap)', otherBody, signList(Buffer.from(otherBody), 'adult-list', 200, privateKey), {}, /is for the list "adult-list", this list is "l1"/],
    ['signedName differs', body, signList(Buffer.from(body), 'l1', 100, privateKey), { signedName: 'hotline-urls' }, /this list is "hotline-urls"/],
    ['an older version (a rollback)', body, signList(Buffer.from(body), 'l1', 99, privateKey), {}, /older than version 100 already accepted/, { version: 100, sha256: sha(body) }],
    ['the same version with other bytes', otherBody, signList(Buffer.from(otherBody), 'l1', 100, privateKey), {}, /already accepted with other bytes/, { version: 100, sha256: sha(body) }],
    ['the statement of other bytes', body, signList(Buffer.from(otherBody), 'l1', 101, privateKey), {}, /signs a body with SHA-256/],
    ['signed by another key', body, signList(Buffer.from(body), 'l1', 101, other.privateKey), {}, /does not verify/],
    ['a changed name line', body, signList(Buffer.from(body), 'l1', 101, privateKey).replace('name: l1', 'name: l2'), { signedName: 'l2' }, /does not verify/],
    ['a changed version line', body, signList(Buffer.from(body), 'l1', 101, privateKey).replace('version: 101', 'version: 999'), {}, /does not verify/],
    ['a garbled statement', body, 'safespot-signed-list v1\nname: l1\nversion: x\n', {}, /not a safespot-signed-list v1 statement|version line/],
    ['CRLF line endings', body, signList(Buffer.from(body), 'l1', 101, privateKey).replace(/\n/g, '\r\n'), {}, /not a safespot-signed-list v1 statement/],
    ['a truncated signature line', body, signList(Buffer.from(body), 'l1', 101, privateKey).slice(0, -20), {}, /signature line/],
  ];
  for (const [i, [what, b, sig, more, why, before]] of cases.entries()) {
    put(`/case${i}.txt`, b, sig);
    const err = await refusal(fetchSource(src(`/case${i}.txt`, more), opts(), before ? { signed: before } : undefined));
    t.equal(err.reason, 'signature', `${what}: refused`);
    t.match(err.message, why, `${what}: says why`);
  }
  // A newer version, and the same version with the same bytes (a re-fetch), are accepted.
  put('/newer.txt', otherBody, signList(Buffer.from(otherBody), 'l1', 101, privateKey));
  t.equal((await fetchSource(src('/newer.txt'), opts(), { signed: { version: 100, sha256: sha(body) } })).status, 'updated', 'a newer version');
  put('/same.txt', body, signList(Buffer.from(body), 'l1', 100, privateKey));
  t.equal((await fetchSource(src('/same.txt'), opts(), { signed: { version: 100, sha256: sha(body) } })).status, 'updated', 'the same version and bytes');
  // Byte by byte: every truncation of a good statement is refused, none throws anything but a ListSourceError.
  const good = signList(Buffer.from(body), 'l1', 100, privateKey);
  let refused = 0;
  for (let n = 0; n < good.length - 1; n++) {
    put('/cut.txt', body, good.slice(0, n));
    const r = await fetchSource(src('/cut.txt'), opts()).then(() => 'accepted', (e: unknown) => (e instanceof ListSourceError && e.reason === 'signature' ? 'refused' : `threw ${String(e)}`));
    if (r === 'refused') refused++;
  }
  t.equal(refused, good.length - 1, 'every truncation refused as a signature failure');
});

t.test('redirects: followed over https; credentials dropped on a cross-origin hop', async (t) => {
  const other = await startOrigin({ ca: origin.ca });
  t.teardown(() => other.close());
  other.put('/moved.txt', listOf(6, 'moved'));
  origin.put('/old.txt', '', { redirectTo: other.url('/moved.txt') });
  const res = await fetchSource(source({ source: origin.url('/old.txt'), headers: { Authorization: 'env:TOK' } }, { TOK: 'redirect-secret-1234' }), opts());
  t.equal(res.status, 'updated');
  if (res.status === 'updated') t.equal(text(res.body), listOf(6, 'moved'));
  t.equal(origin.requestsFor('/old.txt').at(-1)?.headers.authorization, 'redirect-secret-1234');
  t.equal(other.requestsFor('/moved.txt').at(-1)?.headers.authorization, undefined, 'not sent to the other origin');
});

t.test('redirects into the appliance\'s own network are refused on every hop (issue 22, finding 9)', async (t) => {
  const trap = await startOrigin({ ca: origin.ca });
  t.teardown(() => trap.close());
  trap.put('/internal-admin', listOf(3, 'trap'));
  const port = new URL(trap.url('/')).port;
  // The configured source is on 127.0.0.1 (the operator's own choice, so its own host is exempt);
  // every other host below is loopback, private or link-local by literal or by name.
  const targets = [`https://localhost:${port}/internal-admin`, `https://[::1]:${port}/internal-admin`, `https://127.0.0.2:${port}/internal-admin`, 'https://10.0.0.1/x', 'https://169.254.169.254/latest/meta-data', 'https://[::ffff:192.168.0.1]/x', 'https://[fd00::1]/x'];
  for (const [i, to] of targets.entries()) {
    origin.put(`/hop${i}.txt`, '', { redirectTo: to });
    const err = await refusal(fetchSource(source({ source: origin.url(`/hop${i}.txt`) }), opts()));
    t.equal(err.reason, 'http', `${to}: refused`);
    t.match(err.message, /refused a redirect into the appliance's own network/, `${to}: says why`);
  }
  // A second hop is checked too: first to the same host (allowed), then away from it.
  origin.put('/first.txt', '', { redirectTo: origin.url('/second.txt') });
  origin.put('/second.txt', '', { redirectTo: `https://localhost:${port}/internal-admin` });
  const err = await refusal(fetchSource(source({ source: origin.url('/first.txt') }), opts()));
  t.match(err.message, /own network: localhost resolves to a/, 'the second hop refused');
  t.equal(trap.requestsFor('/internal-admin').length, 0, 'the trap was never asked');
});

t.test('file sources: read, integrity, size bound, missing file', async (t) => {
  const body = listOf(9, 'file');
  const path = join(dir, 'local.txt');
  writeFileSync(path, body);
  const res = await fetchSource(source({ source: path, sha256: sha(body) }), opts());
  t.equal(res.status, 'updated');
  if (res.status === 'updated') t.equal(text(res.body), body);
  let err = await refusal(fetchSource(source({ source: path, maxBytes: 10 }), opts()));
  t.equal(err.reason, 'too_large');
  err = await refusal(fetchSource(source({ source: join(dir, 'absent.txt') }), opts({ retries: 2 })));
  t.equal(err.reason, 'read');
  t.match(err.message, /ENOENT/);

  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const keyFile = join(dir, 'file.pub.pem');
  writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(`${path}.sig`, signList(Buffer.from(body), 'l1', 1, privateKey));
  t.equal((await fetchSource(source({ source: path, publicKey: keyFile }), opts())).status, 'updated', 'signed file');
  writeFileSync(path, `${body}extra.blocked.test\n`);
  err = await refusal(fetchSource(source({ source: path, publicKey: keyFile }), opts()));
  t.equal(err.reason, 'signature');
});

t.test('config: sources.ca feeds the dispatcher; http:// and bad headers are config errors', async (t) => {
  const cfg = validateConfig({ sources: { ca: caFile, timeout: '2s', retries: 1 }, lists: [{ id: 'c', category: 'adult', kind: 'domains', source: origin.url('/etag.txt') }] }, dir);
  const o = fetchOptionsFromConfig(cfg.sources);
  t.teardown(() => o.dispatcher.close());
  t.equal(o.timeoutMs, 2000);
  t.equal(o.retries, 1);
  t.equal((await fetchSource(prepareSource(cfg.lists[0]!), o)).status, 'updated', 'the configured CA is trusted');

  t.throws(() => source({ source: 'http://127.0.0.1:1/list.txt' }), /only https/);
  t.throws(() => source({ source: origin.url('/x'), headers: { 'If-None-Match': 'x' } }), /set by safespot itself/);
  t.throws(() => fetchOptionsFromConfig({ ...cfg.sources, ca: join(dir, 'nope.pem') }), /sources\.ca/);
});
