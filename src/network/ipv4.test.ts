import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstFree, formatIPv4, formatSubnet, isHostAddress, overlaps, parseIPv4, parseSubnet } from './ipv4.ts';

test('parseIPv4 is strict', () => {
  assert.equal(formatIPv4(parseIPv4('10.199.0.5')), '10.199.0.5');
  assert.equal(parseIPv4('255.255.255.255'), 0xffffffff);
  for (const s of ['10.199.0', '10.199.0.5.1', '010.1.1.1', '1.1.1.256', ' 1.1.1.1', '1.1.1.1\n', '0x1.1.1.1', '', '1..1.1']) {
    assert.throws(() => parseIPv4(s), /address/, s);
  }
});

test('parseSubnet: aligned, sane prefix, not loopback or multicast', () => {
  assert.equal(formatSubnet(parseSubnet('10.199.3.0/24')), '10.199.3.0/24');
  assert.throws(() => parseSubnet('10.199.3.1/24'), /did you mean 10\.199\.3\.0\/24/);
  assert.throws(() => parseSubnet('10.0.0.0/30'), /between 8 and 29/);
  assert.throws(() => parseSubnet('10.0.0.0/7'), /between 8 and 29/);
  assert.throws(() => parseSubnet('127.0.0.0/8'), /loopback/);
  assert.throws(() => parseSubnet('224.0.0.0/8'), /multicast/);
  assert.throws(() => parseSubnet('10.0.0.0'), /subnet like/);
});

test('allocation: gateway, network and broadcast are never handed out', () => {
  const s = parseSubnet('10.1.2.0/29'); // .0 net, .1 gw, .2-.6 hosts, .7 broadcast
  assert.equal(formatIPv4(firstFree(s, new Set())!), '10.1.2.2');
  const taken = new Set([2, 3, 4, 5].map((n) => parseIPv4(`10.1.2.${n}`)));
  assert.equal(formatIPv4(firstFree(s, taken)!), '10.1.2.6');
  taken.add(parseIPv4('10.1.2.6'));
  assert.equal(firstFree(s, taken), undefined);
  assert.equal(isHostAddress(s, parseIPv4('10.1.2.1')), false);
  assert.equal(isHostAddress(s, parseIPv4('10.1.2.7')), false);
  assert.equal(isHostAddress(s, parseIPv4('10.1.3.2')), false);
  assert.equal(isHostAddress(s, parseIPv4('10.1.2.3')), true);
});

test('overlaps', () => {
  assert.equal(overlaps(parseSubnet('10.0.0.0/8'), parseSubnet('10.199.0.0/24')), true);
  assert.equal(overlaps(parseSubnet('10.199.1.0/24'), parseSubnet('10.199.0.0/24')), false);
});
