import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import { generateName, isValidMachineName, nameFromUnit, unitNameFor, validateMachineName } from './names.ts';

test('valid machine names', () => {
  for (const n of ['bb', 'web-1', 'a_b', 'my.box', 'A1', 'x'.repeat(64), '0abc']) assert.equal(validateMachineName(n), n);
});

test('invalid names are refused with INVALID_ARGUMENT and a reason', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/], ['x'.repeat(65), /longer than 64/], ['.hidden', /start with/], ['-x', /start with/],
    ['a..b', /"\.\."/], ['a/b', /only letters/], ['../etc', /start with|\.\./], ['a b', /only letters/],
    ['a\nb', /only letters/], ['a.', /end with/], ['a%i', /only letters/], ['a\\x2d', /only letters/], ['ü', /only letters/],
  ];
  for (const [n, re] of cases) {
    assert.throws(() => validateMachineName(n), (e) => isBerthError(e, 'INVALID_ARGUMENT') && re.test((e as Error).message), n);
  }
});

test('unit name is the machine name verbatim', () => {
  assert.equal(unitNameFor('web-1.x'), 'systemd-nspawn@web-1.x.service');
  assert.equal(nameFromUnit('systemd-nspawn@web-1.x.service'), 'web-1.x');
  assert.equal(nameFromUnit('foo.service'), undefined);
  assert.throws(() => unitNameFor('a/b'), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
});

test('generateName gives valid adjective-noun names and avoids taken ones', () => {
  for (let i = 0; i < 50; i++) {
    const n = generateName();
    assert.ok(isValidMachineName(n) && /^[a-z]+-[a-z]+$/.test(n), n);
  }
  const n = generateName((c) => !c.includes('-') || c.split('-').length < 3);
  assert.match(n, /^[a-z]+-[a-z]+-\d+$/);
  assert.throws(() => generateName(() => true), (e) => isBerthError(e, 'ALREADY_EXISTS'));
});
