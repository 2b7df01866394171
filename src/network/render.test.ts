/**
 * Golden files for everything network/render writes (fixtures/*.golden; UPDATE_FIXTURES=1
 * rewrites them — review the diff), plus: as root with nft present, every ruleset is
 * checked by the kernel's own parser (`nft -c -f`, which changes nothing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeUnit } from '../unit/index.ts';
import { hostIfName } from './names.ts';
import { parseAttachment, parseZone, serializeAttachment, serializeZone } from './record.ts';
import { machineFiles, machinePortsNft, runtimeNetwork, zoneNft, zoneOf, zoneUnitFile } from './render.ts';
import type { Attachment } from './types.ts';

const DIR = join(import.meta.dirname, 'fixtures');
const zone = zoneOf('berth', '10.199.0.0/24');
const att: Attachment = {
  machine: 'web', zone, address: '10.199.0.5', hostIf: hostIfName('web'), netns: 'berth-web',
  ports: [
    { hostPort: 8080, containerPort: 80, proto: 'tcp' },
    { hostIp: '127.0.0.1', hostPort: 8443, containerPort: 443, proto: 'tcp' },
    { hostIp: '192.0.2.10', hostPort: 5353, containerPort: 53, proto: 'udp' },
  ],
  aliases: ['www', 'web.example'], dns: [], addHosts: [{ name: 'gw', ip: '10.199.0.1' }],
};
const HOST_RESOLV = 'nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\n';

function golden(name: string, text: string): void {
  const p = join(DIR, `${name}.golden`);
  if (process.env.UPDATE_FIXTURES === '1' || !existsSync(p)) writeFileSync(p, text);
  assert.equal(text, readFileSync(p, 'utf8'), `${name} differs from fixtures/${name}.golden`);
}

test('machine files', () => {
  const f = machineFiles(att, HOST_RESOLV, 'web');
  for (const [k, v] of Object.entries(f)) golden(`web.${k}`, v);
  assert.match(f['resolv.conf']!, /^nameserver 10\.199\.0\.1\nnameserver 192\.0\.2\.53$/m, 'zone resolver first, loopback upstreams dropped');
  assert.doesNotMatch(f['ports.nft']!.split('chain output')[0]!, /8443/, 'a loopback-only port is not reachable from outside');
});

test('runtime network and zone', () => {
  golden('web.runtime', `${JSON.stringify(runtimeNetwork(att, '/usr/lib/berth/dist/libexec/berth-helper'), null, 2)}\n`);
  golden('berth.zone.nft', zoneNft(zone));
  golden('berth.zone.service', serializeUnit(zoneUnitFile(zone)));
});

test('records round-trip', () => {
  const z = parseZone(serializeZone(zone), 'berth.zone');
  assert.deepEqual(z, zone);
  const text = serializeAttachment(att);
  golden('web.network.conf', text);
  assert.deepEqual(parseAttachment(text, 'network.conf', 'web', zone), att);
});

test('hand-edited or hostile records are refused with the file and key named', () => {
  const text = serializeAttachment(att);
  const bad: Array<[string, RegExp]> = [
    [text.replace('Address=10.199.0.5', 'Address=10.199.0.1'), /Address=10\.199\.0\.1 is not a host address/],
    [text.replace('Address=10.199.0.5', 'Address=10.200.0.5'), /not a host address/],
    [text.replace('Address=10.199.0.5', 'Address=10.199.0.5; flush ruleset'), /Address=/],
    [text.replace('Publish=8080:80/tcp', 'Publish=80/tcp'), /no host port/],
    [text.replace('Publish=8080:80/tcp', 'Publish=8080:80/tcp } ; flush ruleset'), /Publish=/],
    [text.replace('Alias=www', 'Alias=www\\nx'), /Alias=/],
    [text.replace('Alias=www', 'Alias=a b'), /Alias=/],
    [text.replace('Zone=berth', 'Zone=other'), /Zone=other is not berth/],
    [text.replace('AddHost=gw:10.199.0.1', 'AddHost=gw:10.199.0.1\tevil'), /AddHost=/],
  ];
  for (const [t, re] of bad) assert.throws(() => parseAttachment(t, 'network.conf', 'web', zone), re);
  assert.throws(() => parseZone('[Zone]\nName=berth\nSubnet=10.199.0.0/24; flush ruleset\n', 'z'), /Subnet=/);
  assert.throws(() => parseZone('[Zone]\nName=../x\nSubnet=10.199.0.0/24\n', 'z'), /Name=/);
});

test('long machine names get a hashed, unique host interface name', () => {
  assert.equal(hostIfName('web'), 'be-web');
  const a = hostIfName('a-very-long-machine-name');
  const b = hostIfName('a-very-long-machine-name2');
  assert.equal(a.length, 15);
  assert.notEqual(a, b);
  assert.match(hostIfName('with.dot'), /^bx[0-9a-f]{13}$/);
});

const root = process.getuid?.() === 0 && spawnSync('nft', ['--version']).status === 0;
test('every ruleset passes `nft -c`', { skip: !root && 'needs root and nft' }, () => {
  for (const text of [zoneNft(zone), machinePortsNft(att), machinePortsNft({ ...att, ports: [] })]) {
    const r = spawnSync('nft', ['-c', '-f', '-'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stderr}\n${text}`);
  }
});
