/**
 * Fixture tests (quadlet style, as runtime/nspawn): fixtures/NAME.json holds a partial
 * ContainerSpec merged over BASE, option overrides merged over OPTS, and either the
 * expected error or nothing; NAME.dropin is the exact expected drop-in (ExecStart= in it).
 * UPDATE_FIXTURES=1 rewrites outputs (review the diff!). Assertions below keep the facts
 * that matter visible: the ID mapping, namespaces, capabilities, the network modes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isBerthError } from '../../base/errors.ts';
import type { ContainerSpec } from '../../container/spec.ts';
import { serializeUnit, parseUnit, type UnitFile } from '../../unit/unit-file.ts';
import { PODMAN_DEFAULT_CAPS, toSandboxCommand } from './translate-argv.ts';
import { commandOfDropIn, parseExecWords, portsOfDropIn, toAttachedRun, toMachineDropIn, toTemplateUnit, unitName } from './translate-unit.ts';
import type { BwrapOptions } from './types.ts';

const DIR = join(import.meta.dirname, 'fixtures');
const D = (c: string) => `sha256:${c.repeat(64)}`;
const HOME = '/home/tuser';
const STORE = `${HOME}/.local/share/berth`;

export const BASE: ContainerSpec = {
  name: 'bb',
  image: { ref: 'docker.io/library/busybox:latest', digest: D('a') as never, id: D('b') as never, chainIds: [D('c') as never, D('d') as never] },
  process: { args: ['httpd', '-f', '-p', '80'], env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], cwd: '/', tty: false, stdin: false },
  mounts: [],
  readOnlyRoot: false,
  resources: {},
  restart: 'no',
  boot: false,
  userns: 'private',
  network: { mode: 'link' },
  labels: {},
};

export const OPTS: BwrapOptions = {
  user: { name: 'tuser', uid: 1000, gid: 1000 },
  subuid: { start: 100000, count: 65536 },
  subgid: { start: 100000, count: 65536 },
  paths: {
    lowerDirs: [`${STORE}/snapshots/dir/${'c'.repeat(64)}/fs`, `${STORE}/snapshots/dir/${'d'.repeat(64)}/fs`],
    upper: `${STORE}/sandboxes/bb/upper`,
    work: `${STORE}/sandboxes/bb/work`,
    merged: `${STORE}/sandboxes/bb/rootfs`,
    netns: `${STORE}/sandboxes/bb/netns`,
    exitFile: `${STORE}/sandboxes/bb/last-exit`,
    launcher: `${STORE}/libexec/berth-sandbox-launch`,
  },
  unitDir: `${HOME}/.config/systemd/user`,
  unprivilegedPortStart: 1024,
  delegatedControllers: [],
  cgroupPath: '/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers',
};

interface Fixture {
  spec: Partial<ContainerSpec> & { process?: Partial<ContainerSpec['process']> };
  options?: Partial<BwrapOptions> & { paths?: Partial<BwrapOptions['paths']> };
  error?: { code: string; match: string };
}

function load(name: string): { spec: ContainerSpec; opts: BwrapOptions; fx: Fixture } {
  const fx = JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as Fixture;
  const spec = { ...BASE, ...fx.spec, process: { ...BASE.process, ...fx.spec.process } } as ContainerSpec;
  const opts = { ...OPTS, ...fx.options, paths: { ...OPTS.paths, ...fx.options?.paths } } as BwrapOptions;
  return { spec, opts, fx };
}

for (const f of readdirSync(DIR).filter((n) => n.endsWith('.json')).sort()) {
  const name = f.slice(0, -5);
  test(`fixture ${name}`, () => {
    const { spec, opts, fx } = load(name);
    if (fx.error) {
      assert.throws(() => toMachineDropIn(spec, opts), (e) => {
        assert.ok(isBerthError(e), String(e));
        assert.equal(e.code, fx.error?.code, e.message);
        assert.match(e.message, new RegExp(fx.error!.match));
        return true;
      });
      return;
    }
    const text = serializeUnit(toMachineDropIn(spec, opts).unit);
    const p = join(DIR, `${name}.dropin`);
    if (process.env.UPDATE_FIXTURES === '1' || !existsSync(p)) writeFileSync(p, text);
    assert.equal(text, readFileSync(p, 'utf8'), `${name}.dropin`);
    const u = parseUnit(text);
    assert.equal(u.getAll('Service', 'ExecStart').length, 1);
    assert.deepEqual(u.getAll('X-Berth', 'ChainId'), spec.image.chainIds);
  });
}

test('template unit', () => {
  const text = serializeUnit(toTemplateUnit(OPTS));
  const p = join(DIR, 'template.service');
  if (process.env.UPDATE_FIXTURES === '1' || !existsSync(p)) writeFileSync(p, text);
  assert.equal(text, readFileSync(p, 'utf8'));
  assert.equal(toTemplateUnit(OPTS).path, `${HOME}/.config/systemd/user/berth-sandbox@.service`);
});

test('ID mapping: container root is the user, IDs 1… the subordinate range', () => {
  const { execStart } = toSandboxCommand(BASE, OPTS);
  assert.deepEqual(execStart.slice(0, 10), [
    '/usr/bin/unshare', '--user', '--map-user=0', '--map-group=0', '--map-users=100000,1,65536', '--map-groups=100000,1,65536',
    '--mount', '--propagation', 'private', '--',
  ]);
  const other = toSandboxCommand(BASE, { ...OPTS, subuid: { start: 200000, count: 1000 }, subgid: { start: 300000, count: 2000 } }).execStart;
  assert.ok(other.includes('--map-users=200000,1,1000') && other.includes('--map-groups=300000,1,2000'));
});

test('namespaces, capabilities, no --unshare-user (it would unmap the subordinate IDs)', () => {
  const { bwrap } = toSandboxCommand(BASE, OPTS);
  for (const f of ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', '--new-session', '--clearenv']) assert.ok(bwrap.includes(f), f);
  assert.ok(!bwrap.includes('--unshare-user') && !bwrap.includes('--unshare-all'));
  const added: string[] = bwrap.flatMap((a, i) => (a === '--cap-add' ? [bwrap[i + 1]!] : []));
  assert.deepEqual([...added], [...PODMAN_DEFAULT_CAPS] as string[]);
  assert.ok(bwrap.indexOf('--cap-drop') < bwrap.indexOf('--cap-add'));
  assert.ok(!added.includes('CAP_SYS_ADMIN') && !added.includes('CAP_NET_RAW') && !added.includes('CAP_MKNOD'));
  assert.deepEqual(bwrap.slice(bwrap.indexOf('--') + 1), BASE.process.args);
});

test('network modes: none unshares the netns, the private network goes through pasta, host shares it', () => {
  const none = toSandboxCommand({ ...BASE, network: { mode: 'private' } }, OPTS);
  assert.equal(none.net, 'none');
  assert.ok(none.bwrap.includes('--unshare-net'));
  const pasta = toSandboxCommand(BASE, { ...OPTS, publish: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
  assert.equal(pasta.net, 'pasta');
  assert.ok(!pasta.bwrap.includes('--unshare-net'));
  const launcherArgs = pasta.execStart.slice(pasta.execStart.indexOf(OPTS.paths.launcher) + 1, pasta.execStart.indexOf(OPTS.paths.launcher) + 11);
  assert.deepEqual(launcherArgs.slice(5), ['pasta', OPTS.paths.netns, '8080:80', 'none', '--']);
  const host = toSandboxCommand({ ...BASE, network: { mode: 'host' } }, OPTS);
  assert.ok(!host.bwrap.includes('--unshare-net'));
});

test('launcher gets lowers top-first and the mount targets to check', () => {
  const { execStart } = toSandboxCommand({ ...BASE, mounts: [{ type: 'tmpfs', target: '/var/cache' }] }, OPTS);
  const i = execStart.indexOf(OPTS.paths.launcher);
  assert.equal(execStart[i + 1], [...OPTS.paths.lowerDirs].reverse().join(':'));
  assert.equal(execStart[i + 5], 'proc:dev:etc/resolv.conf:var/cache');
});

test('hostile values: every path with a separator or dot-dot is refused, never passed on', () => {
  const bad = ['/a:b', '/a,b', '/a/../b', 'rel', '/a b', '/a\nb', '/a\\b'];
  for (const t of bad) {
    assert.throws(() => toSandboxCommand({ ...BASE, mounts: [{ type: 'tmpfs', target: t }] }, OPTS), (e) => isBerthError(e, 'INVALID_ARGUMENT'), t);
    assert.throws(() => toSandboxCommand({ ...BASE, mounts: [{ type: 'bind', source: t, target: '/x', readonly: true }] }, OPTS), (e) => isBerthError(e, 'INVALID_ARGUMENT'), t);
    assert.throws(() => toSandboxCommand(BASE, { ...OPTS, paths: { ...OPTS.paths, upper: t } }), (e) => isBerthError(e, 'INVALID_ARGUMENT'), t);
    assert.throws(() => toSandboxCommand({ ...BASE, process: { ...BASE.process, cwd: t } }, OPTS), (e) => isBerthError(e), t);
  }
  for (const name of ['../x', 'a/b', '.x', '']) assert.throws(() => toMachineDropIn({ ...BASE, name }, OPTS), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
  assert.equal(unitName('web'), 'berth-sandbox@web.service');
});

test('X-Berth records the command and each published port; ports read back as they were given', () => {
  const { spec, opts } = load('publish');
  const u = parseUnit(serializeUnit(toMachineDropIn(spec, opts).unit));
  assert.deepEqual(portsOfDropIn(u), opts.publish);
  assert.deepEqual(commandOfDropIn(u), spec.process.args);
  const inj = load('injection');
  assert.deepEqual(commandOfDropIn(parseUnit(serializeUnit(toMachineDropIn(inj.spec, inj.opts).unit))), inj.spec.process.args);
  // Hand-edited or foreign lines are skipped, never half-read.
  const bad = parseUnit('[X-Berth]\nPort=tcp * 80\nPort=sctp * 1 2\nPort=tcp * 8080 80 extra\nPort=tcp $(x) 1 2\nCommand={"a":1}\n');
  assert.deepEqual(portsOfDropIn(bad), []);
  assert.deepEqual(commandOfDropIn(bad), []);
});

test('parseExecWords reads back what the drop-in wrote, keeping $$ for the transient unit', () => {
  for (const name of ['basic', 'injection', 'mounts', 'publish', 'user']) {
    const { spec, opts } = load(name);
    const u = parseUnit(serializeUnit(toMachineDropIn(spec, opts).unit));
    const want = toSandboxCommand(spec, opts).execStart.map((a) => a.replace(/\$/g, '$$$$'));
    assert.deepEqual(parseExecWords(u.get('Service', 'ExecStart')!), want, name);
  }
  assert.deepEqual(parseExecWords(`a 'b c' "d\\"e" f%%g`), ['a', 'b c', 'd"e', 'f%g']);
  for (const bad of ['"open', 'x %h', 'ends\\', 'a\\q']) assert.throws(() => parseExecWords(bad), (e) => isBerthError(e, 'INVALID_ARGUMENT'), bad);
});

test('attached run: a transient service with the unit\'s command and settings; a terminal drops --new-session only', () => {
  const { spec, opts } = load('limits-delegated');
  const template = parseUnit(serializeUnit(toTemplateUnit(opts)));
  const drop = parseUnit(serializeUnit(toMachineDropIn(spec, opts).unit));
  const plain = toAttachedRun(template, drop, { name: 'bb', tty: false, stdin: false });
  assert.equal(plain.unit, 'berth-run-bb.service');
  const sep = plain.argv.indexOf('--');
  const head = plain.argv.slice(0, sep);
  assert.deepEqual(head.slice(0, 7), ['systemd-run', '--user', '--unit=berth-run-bb.service', '--quiet', '--wait', '--collect', '--pipe']);
  const props = head.flatMap((a, i) => (a === '-p' ? [head[i + 1]!] : []));
  for (const p of ['Type=exec', 'KillMode=control-group', 'KillSignal=SIGTERM', 'TimeoutStopSec=10s', 'IgnoreSIGPIPE=no', 'SyslogIdentifier=berth-bb']) assert.ok(props.includes(p), p);
  for (const k of ['MemoryMax=', 'CPUQuota=', 'TasksMax=']) assert.ok(props.some((p) => p.startsWith(k)), k);
  assert.ok(!props.some((p) => /^(Restart|StandardInput)/.test(p)));
  const stopPost = props.find((p) => p.startsWith('ExecStopPost='))!;
  assert.match(stopPost, /\\"\$\$SERVICE_RESULT\\"/);
  assert.match(stopPost, /printf \\"%s %s %s\\\\n\\"/);
  assert.deepEqual(plain.argv.slice(sep + 1), toSandboxCommand(spec, opts).execStart);
  const tty = toAttachedRun(template, drop, { name: 'bb', tty: true, stdin: true });
  assert.ok(tty.argv.includes('--pty') && !tty.argv.includes('--pipe'));
  assert.deepEqual(tty.argv.slice(tty.argv.indexOf('--') + 1), toSandboxCommand(spec, opts).execStart.filter((a) => a !== '--new-session'));
  // A container argument that happens to read "--new-session" stays.
  const odd = { ...spec, process: { ...spec.process, args: ['echo', '--new-session'] } };
  const t2 = toAttachedRun(template, parseUnit(serializeUnit(toMachineDropIn(odd, opts).unit)), { name: 'bb', tty: true, stdin: false });
  assert.deepEqual(t2.argv.slice(-2), ['echo', '--new-session']);
  assert.throws(() => toAttachedRun(template, parseUnit('[Service]\nKillSignal=SIGTERM\n'), { name: 'bb', tty: false, stdin: false }), (e) => isBerthError(e, 'FAILED_PRECONDITION'));
});

test('attached run without a unit: the unit\'s own command as a child when nothing needs systemd', () => {
  const { spec, opts } = load('network-none');
  const template = parseUnit(serializeUnit(toTemplateUnit(opts)));
  const dropOf = (s: ContainerSpec) => parseUnit(serializeUnit(toMachineDropIn(s, opts).unit));
  const args = ['sh', '-c', 'echo "$HOME $$" 100%'];
  const child = toAttachedRun(template, dropOf({ ...spec, process: { ...spec.process, args } }), { name: 'bb', tty: false, stdin: false });
  assert.equal(child.mode, 'child');
  assert.deepEqual(child.why, []);
  // Exactly the unit's command ($$ → $ as systemd does at spawn time), bwrap dying with berth.
  const want = toSandboxCommand({ ...spec, process: { ...spec.process, args } }, opts).execStart;
  const b = want.findIndex((a) => a.endsWith('/bwrap'));
  assert.deepEqual(child.argv, [...want.slice(0, b + 1), '--die-with-parent', ...want.slice(b + 1)]);
  assert.deepEqual(child.argv.slice(-3), args);
  assert.equal(child.env.PATH, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  assert.deepEqual(Object.keys(child.env), ['PATH']);
  assert.equal(child.killSignal, 'SIGTERM');
  assert.equal(child.stopTimeoutSec, 10);
  assert.equal(toAttachedRun(template, dropOf({ ...spec, network: { mode: 'host' } }), { name: 'bb', tty: false, stdin: true }).mode, 'child');
  // What needs a unit: a terminal, pasta, limits, a slice, an ExecStart= berth did not write, a lone $.
  const unitFor = (drop: UnitFile, tty = false) => {
    const r = toAttachedRun(template, drop, { name: 'bb', tty, stdin: tty });
    assert.equal(r.mode, 'unit');
    assert.equal(r.argv[0], 'systemd-run');
    return r.why;
  };
  assert.deepEqual(unitFor(dropOf(spec), true), ['a terminal']);
  assert.deepEqual(unitFor(dropOf({ ...spec, network: { mode: 'link' } })), ['pasta']);
  const lim = load('limits-delegated');
  assert.ok(unitFor(parseUnit(serializeUnit(toMachineDropIn(lim.spec, lim.opts).unit))).includes('MemoryMax'));
  assert.deepEqual(unitFor(dropOf({ ...spec, slice: 'work.slice' })), ['Slice']);
  const edited = dropOf(spec);
  edited.add('Service', 'ExecStart', '');
  edited.add('Service', 'ExecStart', '/usr/bin/sleep 1');
  assert.deepEqual(unitFor(edited), ['a command berth did not write']);
  const dollar = dropOf(spec);
  dollar.add('Service', 'ExecStart', dollar.get('Service', 'ExecStart')!.replace('"--clearenv"', '"--clearenv" "--setenv" "X" "$HOME"'));
  assert.deepEqual(unitFor(dollar), ['$ expansion']);
  const spec2 = dropOf(spec);
  spec2.add('Service', 'Environment', 'HOMEDIR=%h');
  assert.deepEqual(unitFor(spec2), ['an Environment= with specifiers']);
  // A drop-in edit of the stop settings reaches the child mode too.
  const stop = dropOf(spec);
  stop.add('Service', 'KillSignal', 'SIGINT');
  stop.add('Service', 'TimeoutStopSec', '3s');
  const c2 = toAttachedRun(template, stop, { name: 'bb', tty: false, stdin: false });
  assert.equal(c2.killSignal, 'SIGINT');
  assert.equal(c2.stopTimeoutSec, 3);
});
