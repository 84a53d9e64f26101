import t from 'tap';
import { ERRORS, SafespotError } from '../../policy/errors.js';

t.test('every error code has an HTTP status, a TLS alert and an exit status', async (t) => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    t.ok(spec.http >= 400 && spec.http < 600, `${code} http`);
    t.ok([0, 1, 2].includes(spec.exit), `${code} exit`);
    t.match(code, /^ERR_[A-Z_]+$/);
  }
  const e = new SafespotError('ERR_CONFIG_INVALID', 'bad', { details: ['a: b'] });
  t.equal(e.spec.exit, 2);
  t.same(e.details, ['a: b']);
});
