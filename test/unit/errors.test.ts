import { STATUS_CODES } from 'node:http';
import t from 'tap';
import { ERRORS, SafespotError } from '../../policy/errors.js';

t.test('every error code names a real HTTP error status and follows the naming rule', async (t) => {
  // (The TLS alert and the exit status are closed types; the status is only `number` to the compiler.)
  for (const [code, spec] of Object.entries(ERRORS)) {
    t.ok(spec.http >= 400 && spec.http < 600 && STATUS_CODES[spec.http] !== undefined, `${code}: ${spec.http} is an HTTP error status Node knows`);
    t.match(code, /^ERR_[A-Z_]+$/, `${code}: ERR_ and upper case`);
    t.ok(spec.summary.endsWith('.') && spec.summary.length < 200, `${code}: a one-line summary`);
  }
});

t.test('a SafespotError carries its code, its table row and its details', async (t) => {
  const e = new SafespotError('ERR_CONFIG_INVALID', 'bad', { details: ['a: b'] });
  t.equal(e.code, 'ERR_CONFIG_INVALID');
  t.equal(e.spec, ERRORS.ERR_CONFIG_INVALID, 'the row of the table, not a copy');
  t.equal(e.spec.exit, 2);
  t.same(e.details, ['a: b']);
  t.ok(e instanceof Error && e.message.includes('bad'));
});
