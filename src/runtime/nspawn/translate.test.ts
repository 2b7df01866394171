/**
 * Fixture tests in quadlet's style: fixtures/NAME.json holds a partial ContainerSpec (merged
 * over BASE), translator options, and either the expected error or nothing; NAME.nspawn and
 * NAME.dropins hold the exact expected output. UPDATE_FIXTURES=1 rewrites the outputs
 * (review the diff!). Assertions on top keep the important facts visible.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isBerthError } from '../../base/errors.ts';
import type { ContainerSpec } from '../../container/spec.ts';
import { parseNspawnWords } from '../../unit/quote.ts';
import { parseUnit, serializeUnit } from '../../unit/unit-file.ts';
import { payloadOf, toNspawnFile, type NspawnTranslateOptions } from './translate.ts';
import { toServiceDropIns, type DropInOptions } from './translate-dropins.ts';

const DIR = join(import.meta.dirname, 'fixtures');
const D = (c: string) => `sha256:${c.repeat(64)}`;

export const BASE: ContainerSpec = {
  name: 'bb',
  image: { ref: 'docker.io/library/busybox:latest', digest: D('a') as never, id: D('b') as never, chainIds: [D('c') as never] },
  process: { args: ['sh'], env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], cwd: '/', tty: false, stdin: false },
  mounts: [],
  readOnlyRoot: false,
  resources: {},
  restart: 'no',
  boot: false,
  userns: 'private',
  network: { mode: 'link' },
  labels: {},
};

interface Fixture {
  spec: Partial<ContainerSpec> & { process?: Partial<ContainerSpec['process']> };
  options?: NspawnTranslateOptions & DropInOptions;
  error?: { code: string; match: string };
}

function load(name: string): { spec: ContainerSpec; fx: Fixture } {
  const fx = JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as Fixture;
  const spec = { ...BASE, ...fx.spec, process: { ...BASE.process, ...fx.spec.process } } as ContainerSpec;
  return { spec, fx };
}

function render(spec: ContainerSpec, fx: Fixture): { nspawn: string; dropins: string } {
  const nspawn = serializeUnit(toNspawnFile(spec, fx.options));
  const dropins = toServiceDropIns(spec, fx.options).map((d) => `### ${d.file}\n${serializeUnit(d.unit)}`).join('');
  return { nspawn, dropins };
}

for (const f of readdirSync(DIR).filter((n) => n.endsWith('.json')).sort()) {
  const name = f.slice(0, -5);
  test(`fixture ${name}`, () => {
    const { spec, fx } = load(name);
    if (fx.error) {
      assert.throws(() => render(spec, fx), (e) => isBerthError(e) && e.code === fx.error?.code && new RegExp(fx.error.match).test(e.message));
      return;
    }
    const out = render(spec, fx);
    for (const [ext, text] of [['nspawn', out.nspawn], ['dropins', out.dropins]] as const) {
      const p = join(DIR, `${name}.${ext}`);
      if (process.env.UPDATE_FIXTURES === '1' || !existsSync(p)) writeFileSync(p, text);
      assert.equal(text, readFileSync(p, 'utf8'), `${name}.${ext}`);
    }
    // Whatever was written must read back to the same argv and environment.
    const u = parseUnit(out.nspawn);
    const params = u.getAll('Exec', 'Parameters').flatMap(parseNspawnWords);
    assert.deepEqual(payloadOf(params).command, spec.process.args);
    const env = u.getAll('Exec', 'Environment').flatMap(parseNspawnWords);
    assert.deepEqual(new Map(env.map((kv) => [kv.split('=')[0], kv])), new Map(spec.process.env.map((kv) => [kv.split('=')[0], kv])));
  });
}

test('injection: hostile env/arg values never create a second setting', () => {
  const { spec } = load('injection');
  const u = parseUnit(serializeUnit(toNspawnFile(spec, { initHostPath: '/usr/bin/catatonit' })));
  assert.equal(u.getRaw('Exec', 'Boot').length, 1);
  assert.equal(u.get('Exec', 'Boot'), 'no');
  assert.equal(u.getRaw('Exec', 'Parameters').length, 1);
  assert.deepEqual(u.keys('Exec'), ['Boot', 'ProcessTwo', 'Parameters', 'Environment', 'WorkingDirectory', 'KillSignal', 'PrivateUsers', 'NotifyReady']);
});

test('newline in an argument or env value is refused, naming it', () => {
  const arg = { ...BASE, process: { ...BASE.process, args: ['echo', 'foo\nBoot=yes'] } };
  assert.throws(() => toNspawnFile(arg), /argument 1: contains a newline/);
  const env = { ...BASE, process: { ...BASE.process, env: ['A=1', 'X=a\nb'] } };
  assert.throws(() => toNspawnFile(env), (e) => isBerthError(e, 'INVALID_ARGUMENT') && /env X: contains a newline/.test((e as Error).message));
});

test('names with / or .. are refused before anything is written', () => {
  for (const name of ['../etc', 'a/b', 'a..b', '.x']) {
    assert.throws(() => toNspawnFile({ ...BASE, name }), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => toServiceDropIns({ ...BASE, name }), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
  }
});

test('-u with berth-helper setuser: numeric ids and groups, helper bound, no nspawn User=', () => {
  const opts = { initHostPath: '/usr/bin/catatonit', setuserHostPath: '/usr/lib/berth/dist/libexec/berth-helper' };
  const spec = { ...BASE, process: { ...BASE.process, user: '1234:5678' } };
  const u = parseUnit(serializeUnit(toNspawnFile(spec, opts)));
  const params = u.getAll('Exec', 'Parameters').flatMap(parseNspawnWords);
  assert.deepEqual(params.slice(0, 5), ['/run/host/berth/init', '--', '/run/host/berth/setuser', '1234:5678', '--']);
  assert.deepEqual(params.slice(5), spec.process.args);
  assert.equal(u.get('Exec', 'User'), undefined);
  assert.ok(u.getAll('Files', 'BindReadOnly').includes('/usr/lib/berth/dist/libexec/berth-helper:/run/host/berth/setuser'));
  for (const root of ['root', '0', '0:0']) {
    const r = parseUnit(serializeUnit(toNspawnFile({ ...BASE, process: { ...BASE.process, user: root } }, opts)));
    assert.ok(!r.getAll('Exec', 'Parameters').join(' ').includes('setuser'));
  }
  for (const bad of ['a:b:c', 'x y', '-1', 'a;b']) {
    assert.throws(() => toNspawnFile({ ...BASE, process: { ...BASE.process, user: bad } }, opts), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
  }
});

test('stop signals: SIGUSR1/SIGUSR2 and real-time signals are accepted, junk is refused', () => {
  for (const sig of ['SIGUSR1', 'SIGUSR2', 'SIGQUIT', 'SIGRTMIN+3']) {
    assert.equal(parseUnit(serializeUnit(toNspawnFile({ ...BASE, stopSignal: sig }, { initHostPath: '/usr/bin/catatonit' }))).get('Exec', 'KillSignal'), sig);
  }
  for (const bad of ['SIGUSR3', 'USR1', 'SIG', 'SIGTERM\nBoot=yes']) {
    assert.throws(() => toNspawnFile({ ...BASE, stopSignal: bad }, { initHostPath: '/usr/bin/catatonit' }), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
  }
});
