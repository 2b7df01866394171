import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError, marshal, parseSignature, signatureOf, unmarshal } from './wire.ts';
import { decodeMessage, encodeMessage, frameLength, MessageType } from './message.ts';
import { codeForDBusError, socketPaths } from './connection.ts';
import { formatIPv6 } from './machine1.ts';
import { unitObjectPath } from './systemd1.ts';

test('signatures parse into complete types and print back', () => {
  for (const s of ['a(ssssssouso)', 'a{sv}', 'a(iay)', 'ssi', 'a{sa{sv}}', '(sasbttttuii)', 'aas', 'v']) {
    assert.equal(parseSignature(s).map(signatureOf).join(''), s);
  }
  for (const bad of ['a', '(', '()', 'a{vs}', 'a{s}', 'z', '(ss', 'a{ss']) {
    assert.throws(() => parseSignature(bad), WireError, bad);
  }
});

test('the exact bytes of a known call body (alignment and padding)', () => {
  // "ssi": "a" (len 1 + NUL, pad to 4), "bc", int32 -1
  const b = marshal('ssi', ['a', 'bc', -1]);
  assert.equal(b.toString('hex'), '010000006100000002000000626300' + '00' + 'ffffffff');
  // a struct array aligns each struct to 8 after the length word
  const a = marshal('a(yt)', [[[1, 2n]]]);
  assert.equal(a.toString('hex'), '10000000' + '00000000' + '01' + '00000000000000' + '0200000000000000');
});

test('values round-trip through marshal/unmarshal', () => {
  const cases: Array<[string, unknown[]]> = [
    ['asas', [[], ['systemd-nspawn@*.service', 'x']]],
    ['a(ssssssouso)', [[['u.service', 'd', 'loaded', 'active', 'running', '', '/org/x', 0, '', '/']]]],
    ['ybnqiuxtd', [255, true, -2, 65535, -5, 4294967295, -9007199254740993n, 18446744073709551615n, 1.5]],
    ['a(iay)', [[[2, [10, 0, 0, 1]], [10, new Array(16).fill(0)]]]],
    ['g', ['a{sv}']],
  ];
  for (const [sig, vals] of cases) assert.deepEqual(unmarshal(sig, marshal(sig, vals)), vals, sig);
  const dict = unmarshal('a{sv}', marshal('a{sv}', [new Map<string, unknown>([['A', { sig: 's', value: 'x' }], ['B', { sig: 'at', value: [1n] }]])]))[0];
  assert.deepEqual(dict, new Map<string, unknown>([['A', 'x'], ['B', [1n]]]));
});

test('hostile bodies fail with WireError, never read out of range', () => {
  const bad: Array<[string, Buffer]> = [
    ['s', Buffer.from('ffffff7f41', 'hex')], // length far beyond the body
    ['s', Buffer.from('0100000041ff', 'hex')], // no NUL terminator
    ['s', Buffer.from('02000000c328' + '00', 'hex')], // invalid UTF-8
    ['s', Buffer.from('03000000' + '410042' + '00', 'hex')], // a NUL inside an ASCII string
    ['s', Buffer.from('04000000' + 'c3a90041' + '00', 'hex')], // a NUL inside a UTF-8 string
    ['b', Buffer.from('02000000', 'hex')], // boolean 2
    ['as', Buffer.from('ffffffff', 'hex')], // array above the limit
    ['as', Buffer.from('08000000' + '0100000041', 'hex')], // array runs past the end
    ['v', Buffer.from('01' + '7a' + '00', 'hex')], // unknown type in a variant
    ['o', Buffer.from('03000000' + '2e2e2f' + '00', 'hex')], // not an object path
    ['y', Buffer.from('0102', 'hex')], // trailing bytes
    ['(yy)', Buffer.from('01', 'hex')], // truncated struct
  ];
  for (const [sig, buf] of bad) assert.throws(() => unmarshal(sig, buf), WireError, `${sig} ${buf.toString('hex')}`);
  // variants nested without end must stop at the depth limit
  let deep = Buffer.from('01' + '76' + '00', 'hex');
  for (let i = 0; i < 80; i++) deep = Buffer.concat([deep, Buffer.from('017600', 'hex')]);
  assert.throws(() => unmarshal('v', deep), WireError);
});

test('messages encode, frame and decode; a bad header is refused', () => {
  const body = marshal('ss', ['systemd-nspawn@x.service', 'replace']);
  const m = encodeMessage({ type: MessageType.MethodCall, serial: 7, destination: 'org.freedesktop.systemd1', path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager', member: 'StartUnit', signature: 'ss', body });
  assert.equal(frameLength(m), m.length);
  assert.equal(frameLength(m.subarray(0, 10)), undefined);
  const d = decodeMessage(m);
  assert.equal(d.member, 'StartUnit');
  assert.equal(d.serial, 7);
  assert.equal(d.signature, 'ss');
  assert.deepEqual(unmarshal('ss', d.body as Buffer), ['systemd-nspawn@x.service', 'replace']);
  const big = Buffer.from(m);
  big[0] = 0x42; // big-endian
  assert.throws(() => frameLength(big), WireError);
  const huge = Buffer.from(m);
  huge.writeUInt32LE(0x7fffffff, 4);
  assert.throws(() => frameLength(huge), WireError);
  const short = Buffer.from(m);
  short.writeUInt32LE(body.length + 8, 4);
  assert.throws(() => decodeMessage(short), WireError);
});

test('helpers: bus addresses, error codes, IPv6 text, unit object paths', () => {
  assert.deepEqual(socketPaths('unix:path=/run/dbus/system_bus_socket'), ['/run/dbus/system_bus_socket']);
  assert.deepEqual(socketPaths('tcp:host=x;unix:abstract=/tmp/dbus-1,guid=00'), ['\0/tmp/dbus-1']);
  assert.equal(codeForDBusError('org.freedesktop.systemd1.NoSuchUnit'), 'NOT_FOUND');
  assert.equal(codeForDBusError('org.freedesktop.DBus.Error.AccessDenied'), 'PERMISSION_DENIED');
  assert.equal(codeForDBusError('org.freedesktop.DBus.Error.NoReply'), 'TIMEOUT');
  assert.equal(codeForDBusError('org.freedesktop.systemd1.UnitMasked'), 'FAILED_PRECONDITION');
  const v6 = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/:/g, ''), 'hex'));
  assert.equal(formatIPv6(v6('fe80:0000:0000:0000:0201:02ff:fe03:0405')), 'fe80::201:2ff:fe03:405');
  assert.equal(formatIPv6(v6('0000:0000:0000:0000:0000:0000:0000:0001')), '::1');
  assert.equal(formatIPv6(v6('2001:0db8:0000:0001:0000:0000:0000:0001')), '2001:db8:0:1::1');
  assert.equal(formatIPv6(v6('2001:0db8:0000:0000:0001:0000:0000:0001')), '2001:db8::1:0:0:1');
  assert.equal(formatIPv6(v6('0000:0000:0000:0000:0000:ffff:0a00:0001')), '::ffff:10.0.0.1');
  assert.equal(unitObjectPath('systemd-nspawn@web.service'), '/org/freedesktop/systemd1/unit/systemd_2dnspawn_40web_2eservice');
});
