import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bridgeName, validateZoneName, zoneFile } from './names.ts';
import { parseAddHost, validateDnsName } from './record.ts';

test('zone names: short, lowercase, no path or rule syntax', () => {
  assert.equal(bridgeName('berth'), 'bz-berth');
  assert.equal(bridgeName('a23456789012').length, 15);
  for (const z of ['', 'A', 'a234567890123', '../x', 'a/b', 'a b', 'a;b', 'a"b', '-x', '_x', 'x.y', 'é']) {
    assert.throws(() => validateZoneName(z), /is not valid/, JSON.stringify(z));
    assert.throws(() => zoneFile(z), /is not valid/);
  }
});

test('aliases and --add-host', () => {
  assert.equal(validateDnsName('db.internal'), 'db.internal');
  for (const n of ['', 'a..b', '-a', 'a-', 'a b', 'a\nb', 'a;b', 'x'.repeat(64), '.a']) assert.throws(() => validateDnsName(n), /host name/, JSON.stringify(n));
  assert.deepEqual(parseAddHost('gw:host-gateway'), { name: 'gw', ip: 'host-gateway' });
  assert.deepEqual(parseAddHost('x.example:192.0.2.1'), { name: 'x.example', ip: '192.0.2.1' });
  for (const v of ['x', ':1.2.3.4', 'x:1.2.3', 'x:::1', 'a b:1.2.3.4']) assert.throws(() => parseAddHost(v), /add-host|host name|address/, v);
});
