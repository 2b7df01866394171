import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import { parseUnit, serializeUnit, UnitFile } from './unit-file.ts';

const SAMPLE = `# top comment

[Unit]
Description=Container %i
Documentation=man:systemd-nspawn(1)
  ; indented comment
After=a.service \\
  b.service
After=c.service

[Service]
ExecStart=
ExecStart=/bin/true --x=\\
# a comment inside a continuation is skipped
  y
Environment=A=1
Environment=
Environment=B=2 "C=3 4"
KEY = spaced value  
[Service]
TasksMax=10
`;

test('round-trips byte for byte', () => {
  assert.equal(serializeUnit(parseUnit(SAMPLE)), SAMPLE);
});

test('logical values: continuations, comments in continuations, spacing', () => {
  const u = parseUnit(SAMPLE);
  assert.equal(u.get('Unit', 'Description'), 'Container %i');
  assert.deepEqual(u.getRaw('Unit', 'After'), ['a.service  b.service', 'c.service']);
  assert.equal(u.get('Service', 'ExecStart'), '/bin/true --x= y');
  assert.equal(u.get('Service', 'KEY'), 'spaced value');
  assert.equal(u.get('Service', 'TasksMax'), '10', 'repeated sections are one list');
  assert.deepEqual(u.keys('Unit'), ['Description', 'Documentation', 'After']);
  assert.deepEqual(u.sectionNames(), ['Unit', 'Service']);
});

test('getAll honours empty resets; getRaw keeps them', () => {
  const u = parseUnit(SAMPLE);
  assert.deepEqual(u.getAll('Service', 'Environment'), ['B=2 "C=3 4"']);
  assert.deepEqual(u.getRaw('Service', 'Environment'), ['A=1', '', 'B=2 "C=3 4"']);
  assert.deepEqual(u.getAll('Service', 'ExecStart'), ['/bin/true --x= y']);
});

test('set replaces in place, keeps neighbours and comments', () => {
  const u = parseUnit(SAMPLE);
  u.set('Unit', 'After', 'd.service');
  const out = serializeUnit(u);
  assert.ok(out.includes('Documentation=man:systemd-nspawn(1)\n  ; indented comment\nAfter=d.service\n\n[Service]'), out);
  assert.deepEqual(u.getRaw('Unit', 'After'), ['d.service']);
  assert.ok(out.startsWith('# top comment\n\n[Unit]\n'));
});

test('add appends after the last entry, before trailing blank lines', () => {
  const u = parseUnit('[Unit]\nA=1\n\n[Service]\nB=2\n');
  u.add('Unit', 'A', '2').add('Install', 'WantedBy', 'machines.target');
  assert.equal(serializeUnit(u), '[Unit]\nA=1\nA=2\n\n[Service]\nB=2\n\n[Install]\nWantedBy=machines.target\n');
  assert.equal(u.remove('Unit', 'A'), 2);
  assert.equal(u.get('Unit', 'A'), undefined);
});

test('building from scratch separates sections with blank lines', () => {
  const u = new UnitFile();
  u.comment('generated');
  u.set('Exec', 'Boot', 'no').set('Files', 'ReadOnly', 'yes');
  assert.equal(serializeUnit(u), '# generated\n\n[Exec]\nBoot=no\n\n[Files]\nReadOnly=yes\n');
});

test('values that would break the line are refused', () => {
  const u = new UnitFile();
  for (const v of ['a\nBoot=yes', 'a\r', 'a\0', 'ends\\']) {
    assert.throws(() => u.set('Exec', 'Parameters', v), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
  }
  u.set('Exec', 'Parameters', 'even\\\\');
  assert.throws(() => u.set('Exec', 'Bad Key', 'x'), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
});

test('bad input: assignment outside a section, missing =', () => {
  assert.throws(() => parseUnit('A=1\n', { path: 'x.conf' }), /x\.conf:1: assignment outside/);
  assert.throws(() => parseUnit('[A]\nnonsense\n'), /expected KEY=VALUE/);
});

test('a file without trailing newline gains one; empty stays empty', () => {
  assert.equal(serializeUnit(parseUnit('[A]\nB=1')), '[A]\nB=1\n');
  assert.equal(serializeUnit(parseUnit('')), '');
});
