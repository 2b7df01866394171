import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import { networkFromFlags, publishedPorts, specFromFlags, type ImageForRun, type NetworkDefaults, type RunRequestFlags } from './flags.ts';

const D = (c: string) => `sha256:${c.repeat(64)}` as never;
const image: ImageForRun = {
  name: '127.0.0.1:5000/busybox:latest', digest: D('a'), id: D('b'), chainIds: [D('c'), D('d')],
  config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'], ExposedPorts: { '80/tcp': {} } } },
};
const NSPAWN: NetworkDefaults = { mode: 'zone', publishModes: ['zone'] };
const NSPAWN_NO_SYSTEMD: NetworkDefaults = { mode: 'private', publishModes: ['zone'] };
const BWRAP: NetworkDefaults = { mode: 'link', publishModes: ['link'] };
const spec = (flags: RunRequestFlags, network = NSPAWN, extra: Partial<Parameters<typeof specFromFlags>[0]> = {}) =>
  specFromFlags({ image, ref: 'busybox', args: [], flags, name: 'web', environ: { HOME: '/root', SECRET: 's3' }, network, ...extra });
const refuses = (fn: () => unknown, code: string, re: RegExp) => assert.throws(fn, (e) => isBerthError(e) && e.code === code && re.test(e.message));

test('flags → neutral spec: image, env (files, then -e, pass-through from the environment), resources, userns', () => {
  const s = spec({ env: ['A=1', 'SECRET'], envFile: ['x'], memory: '64M', cpus: '1.5', pidsLimit: '32', userns: 'auto', restart: 'on-failure:3', stopTimeout: '7' },
    NSPAWN, { envFiles: [{ path: '/e.env', text: 'FROM_FILE=yes\n# comment\n' }] });
  assert.equal(s.name, 'web');
  assert.deepEqual(s.image, { ref: '127.0.0.1:5000/busybox:latest', digest: D('a'), id: D('b'), chainIds: [D('c'), D('d')] });
  assert.deepEqual(s.process.args, ['/bin/sh']);
  assert.deepEqual(s.process.env, ['PATH=/bin', 'FROM_FILE=yes', 'A=1', 'SECRET=s3']);
  assert.deepEqual(s.resources, { memoryMax: 64 * 1024 * 1024, cpuQuotaPercent: 150, tasksMax: 32 });
  assert.equal(s.userns, 'private');
  assert.equal(spec({ userns: 'host' }).userns, 'host');
  assert.equal(spec({ userns: 'private' }).userns, 'private');
  assert.deepEqual([s.restart, s.restartMaxRetries, s.stopTimeoutSec], ['on-failure', 3, 7]);
  refuses(() => spec({ userns: 'keep-id' }), 'INVALID_ARGUMENT', /--userns: expected host or auto, got keep-id/);
});

test('the backend decides the default network; flags name modes in neutral words', () => {
  assert.deepEqual(spec({}).network, { mode: 'zone', zone: 'berth' });
  assert.deepEqual(spec({}, NSPAWN_NO_SYSTEMD).network, { mode: 'private' });
  assert.deepEqual(spec({}, BWRAP).network, { mode: 'link' });
  assert.deepEqual(spec({ network: 'none' }, BWRAP).network, { mode: 'private' });
  assert.deepEqual(spec({ network: 'host' }).network, { mode: 'host' });
  assert.deepEqual(spec({ network: 'veth' }).network, { mode: 'link' });
  assert.deepEqual(spec({ network: 'bridge' }).network, { mode: 'zone', zone: 'berth' });
  assert.deepEqual(spec({ network: 'lab' }, BWRAP).network, { mode: 'zone', zone: 'lab' }, 'bwrap refuses zones itself, with UNSUPPORTED');
  refuses(() => spec({ network: '../x' }), 'INVALID_ARGUMENT', /--network/);
});

test('-p goes where the backend can publish: a zone for nspawn, its own network for bwrap', () => {
  const z = spec({ publish: ['8080:80', '127.0.0.1:5353:53/udp'] });
  assert.equal(z.network.mode, 'zone');
  assert.equal(z.network.publish?.length, 2);
  assert.deepEqual(publishedPorts(z), [
    { hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53, protocol: 'udp' },
  ]);
  const b = spec({ publish: ['18080:80'] }, BWRAP);
  assert.deepEqual(b.network.mode, 'link');
  assert.deepEqual(publishedPorts(b), [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }]);
  assert.deepEqual(publishedPorts(spec({ publishAll: true }, BWRAP)).map((p) => [p.containerPort, p.protocol]), [[80, 'tcp']]);
  assert.deepEqual(publishedPorts(spec({}, BWRAP)), []);
  refuses(() => spec({ publish: ['80:80'] }, NSPAWN_NO_SYSTEMD), 'INVALID_ARGUMENT', /-p\/--publish needs a network zone \(--network=NAME\), not --network=private/);
  refuses(() => spec({ publish: ['80:80'], network: 'none' }, BWRAP), 'INVALID_ARGUMENT', /-p\/--publish needs the default private network, not --network=none/);
  refuses(() => spec({ publish: ['80:80'], network: 'host' }), 'INVALID_ARGUMENT', /needs a network zone/);
});

test('zone-only flags are refused outside a zone; bad values name the flag', () => {
  refuses(() => spec({ ip: '10.0.0.5' }, BWRAP), 'INVALID_ARGUMENT', /--ip needs a network zone \(--network=NAME\), not --network=link/);
  refuses(() => spec({ dns: ['1.1.1.1'], network: 'none' }), 'INVALID_ARGUMENT', /--dns needs a network zone/);
  refuses(() => spec({ networkAlias: ['db'], network: 'host' }), 'INVALID_ARGUMENT', /--network-alias needs a network zone/);
  refuses(() => spec({ addHost: ['a:1.2.3.4'] }, NSPAWN_NO_SYSTEMD), 'INVALID_ARGUMENT', /--add-host needs a network zone/);
  refuses(() => spec({ ip: 'not-an-ip' }), 'INVALID_ARGUMENT', /--ip "not-an-ip" is not an IPv4 address/);
  refuses(() => spec({ dns: ['::1'] }), 'INVALID_ARGUMENT', /--dns "::1" is not an IPv4 address/);
  const z = spec({ ip: '10.199.0.9', dns: ['10.0.0.1'], networkAlias: ['db'], addHost: ['gw:host-gateway'] });
  assert.deepEqual([z.network.ip, z.network.dns, z.network.aliases, z.network.addHosts], ['10.199.0.9', ['10.0.0.1'], ['db'], [{ name: 'gw', ip: 'host-gateway' }]]);
  assert.equal(networkFromFlags({}, undefined, BWRAP).mode, 'link');
});

test('hostile names and values never reach a spec', () => {
  for (const name of ['../x', 'a/b', '', '-rf', 'x'.repeat(300), 'a\nb']) {
    assert.throws(() => specFromFlags({ image, ref: 'b', args: [], flags: {}, name, environ: {}, network: BWRAP }), (e) => isBerthError(e, 'INVALID_ARGUMENT'), JSON.stringify(name));
  }
  refuses(() => spec({ memory: '-1' }), 'INVALID_ARGUMENT', /memory/i);
  refuses(() => spec({ workdir: 'relative' }), 'INVALID_ARGUMENT', /must be absolute/);
});
