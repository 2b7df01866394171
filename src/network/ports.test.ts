import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import { clash, exposedToRequests, listenerClash, parseProcNet, parsePublish, pickHostPort, PICK_RANGE } from './ports.ts';

test('parsePublish: Docker forms', () => {
  assert.deepEqual(parsePublish('80'), [{ hostPort: 0, containerPort: 80, proto: 'tcp' }]);
  assert.deepEqual(parsePublish('8080:80'), [{ hostPort: 8080, containerPort: 80, proto: 'tcp' }]);
  assert.deepEqual(parsePublish('127.0.0.1:8080:80/udp'), [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, proto: 'udp' }]);
  assert.deepEqual(parsePublish('127.0.0.1::80'), [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, proto: 'tcp' }]);
  assert.deepEqual(parsePublish('0.0.0.0:81:80'), [{ hostPort: 81, containerPort: 80, proto: 'tcp' }]);
  assert.deepEqual(parsePublish('8080-8081:80-81/TCP').map((p) => [p.hostPort, p.containerPort]), [[8080, 80], [8081, 81]]);
  assert.deepEqual(parsePublish('80-82').map((p) => [p.hostPort, p.containerPort]), [[0, 80], [0, 81], [0, 82]]);
  assert.deepEqual(parsePublish('0:80'), [{ hostPort: 0, containerPort: 80, proto: 'tcp' }]);
});

test('parsePublish: bad values name the problem', () => {
  const bad: Array<[string, RegExp, string?]> = [
    ['', /container port is missing|not a port/],
    ['8080:', /container port is missing/],
    ['x:80', /host port "x" is not a port number/],
    ['80:0', /container port 0 is out of range/],
    ['70000:80', /out of range/],
    ['80/sctp', /protocol "sctp"/],
    ['8080-8081:80', /differ in length/],
    ['81-80', /reversed/],
    ['1-2000', /more than 1000 ports/],
    ['300.1.1.1:80:80', /octet 300/],
    ['01.2.3.4:80:80', /leading zero/],
    ['[::1]:80:80', /IPv6/, 'UNSUPPORTED'],
    ['1:2:3:4', /IPv6/, 'UNSUPPORTED'],
    ['80 ', /not a port number/],
    ['80\n', /not a port number/],
    ['-1:80', /not a port number/],
  ];
  for (const [v, re, code = 'INVALID_ARGUMENT'] of bad) {
    assert.throws(() => parsePublish(v), (e) => isBerthError(e, code as never) && re.test(e.message), `-p ${JSON.stringify(v)}`);
  }
});

test('exposedToRequests reads ExposedPorts keys and refuses junk', () => {
  assert.deepEqual(exposedToRequests({ '80/tcp': {}, '53/udp': {}, '8080': {} }).map((p) => `${p.containerPort}/${p.proto}`).sort(), ['53/udp', '80/tcp', '8080/tcp']);
  assert.deepEqual(exposedToRequests(undefined), []);
  for (const k of ['80/sctp', '0/tcp', 'x', '99999/tcp', '80/tcp/x']) assert.throws(() => exposedToRequests({ [k]: {} }), /ExposedPorts/);
});

test('clash: same proto and port, overlapping addresses', () => {
  const a = { hostPort: 8080, containerPort: 80, proto: 'tcp' as const };
  assert.equal(clash(a, { ...a, containerPort: 81 }), true);
  assert.equal(clash(a, { ...a, proto: 'udp' }), false);
  assert.equal(clash(a, { ...a, hostIp: '127.0.0.1' }), true);
  assert.equal(clash({ ...a, hostIp: '127.0.0.1' }, { ...a, hostIp: '127.0.0.2' }), false);
});

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0
`;

test('parseProcNet: listening TCP sockets only, addresses decoded', () => {
  const l = parseProcNet(TCP, 'tcp');
  assert.deepEqual(l, [{ proto: 'tcp', addr: '127.0.0.1', port: 8080 }, { proto: 'tcp', addr: '0.0.0.0', port: 22 }]);
  const l6 = parseProcNet(TCP6, 'tcp');
  assert.equal(l6.length, 2);
  assert.equal(parseProcNet('garbage\n  0: zz\n', 'tcp').length, 0);
});

test('listenerClash: wildcard and specific binds', () => {
  const ls = [...parseProcNet(TCP, 'tcp'), ...parseProcNet(TCP6, 'tcp')];
  const r = (hostPort: number, hostIp?: string) => ({ hostPort, containerPort: 80, proto: 'tcp' as const, ...(hostIp ? { hostIp } : {}) });
  assert.ok(listenerClash(r(8080), ls), '127.0.0.1:8080 blocks an all-address publication');
  assert.ok(listenerClash(r(8080, '127.0.0.1'), ls));
  assert.equal(listenerClash(r(8080, '192.0.2.1'), ls), undefined, 'a loopback listener does not block another address');
  assert.ok(listenerClash(r(22, '192.0.2.1'), ls), '0.0.0.0:22 blocks every address');
  assert.ok(listenerClash(r(8081, '192.0.2.1'), ls), ':::8081 blocks every address');
  assert.ok(listenerClash(r(8082, '127.0.0.1'), ls), '[::1]:8082 blocks 127.0.0.1 (localhost)');
  assert.equal(listenerClash({ ...r(22), proto: 'udp' }, ls), undefined);
});

test('pickHostPort skips used and listening ports', () => {
  const r = { hostPort: 0, containerPort: 80, proto: 'tcp' as const };
  const first = PICK_RANGE[0];
  assert.equal(pickHostPort(r, [], []), first);
  assert.equal(pickHostPort(r, [{ ...r, hostPort: first }], [{ proto: 'tcp', addr: '0.0.0.0', port: first + 1 }]), first + 2);
});
