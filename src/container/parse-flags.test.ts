import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import {
  parseCpus, parseEnvFile, parseEnvFlag, parseMemory, parsePidsLimit, parseRestart, parseSignal, parseStopTimeout, parseTmpfs, parseUser, parseVolume,
} from './parse-flags.ts';

const invalid = (re: RegExp) => (e: unknown): boolean => isBerthError(e, 'INVALID_ARGUMENT') && re.test((e as Error).message);

test('--memory', () => {
  assert.equal(parseMemory('512M'), 512 * 1024 ** 2);
  assert.equal(parseMemory('1g'), 1024 ** 3);
  assert.equal(parseMemory('1.5G'), 1.5 * 1024 ** 3);
  assert.equal(parseMemory('1024'), 1024);
  assert.equal(parseMemory('64mb'), 64 * 1024 ** 2);
  assert.equal(parseMemory('2k'), 2048);
  for (const s of ['', 'lots', '-1m', '0', '1x', '1.g']) assert.throws(() => parseMemory(s), invalid(/--memory/), s);
});

test('--cpus and --pids-limit', () => {
  assert.equal(parseCpus('1.5'), 150);
  assert.equal(parseCpus('.5'), 50);
  assert.equal(parseCpus('2'), 200);
  for (const s of ['0', 'x', '-1', '0.001']) assert.throws(() => parseCpus(s), invalid(/--cpus/), s);
  assert.equal(parsePidsLimit('100'), 100);
  assert.equal(parsePidsLimit('-1'), undefined);
  assert.equal(parsePidsLimit('0'), undefined);
  assert.throws(() => parsePidsLimit('-5'), invalid(/--pids-limit/));
  assert.throws(() => parsePidsLimit('1.5'), invalid(/integer/));
});

test('-e and --env-file', () => {
  const environ = { HOME: '/root', EMPTY: '' };
  assert.equal(parseEnvFlag('A=b=c', environ), 'A=b=c');
  assert.equal(parseEnvFlag('A=', environ), 'A=');
  assert.equal(parseEnvFlag('HOME', environ), 'HOME=/root');
  assert.equal(parseEnvFlag('EMPTY', environ), 'EMPTY=');
  assert.equal(parseEnvFlag('UNSET', environ), undefined);
  assert.throws(() => parseEnvFlag('=x', environ), invalid(/empty/));
  assert.throws(() => parseEnvFlag('A B=x', environ), invalid(/whitespace/));
  const text = '# comment\n\n  A=1\nB="quoted" # not a comment\nHOME\nUNSET\r\nC=x y\n';
  assert.deepEqual(parseEnvFile(text, 'f.env', environ), ['A=1', 'B="quoted" # not a comment', 'HOME=/root', 'C=x y']);
  assert.throws(() => parseEnvFile('A=1\n=2\n', 'f.env', environ), invalid(/f\.env:2/));
});

test('-v and --tmpfs', () => {
  assert.deepEqual(parseVolume('/srv:/data'), { type: 'bind', source: '/srv', target: '/data', readonly: false });
  assert.deepEqual(parseVolume('/srv:/data:ro'), { type: 'bind', source: '/srv', target: '/data', readonly: true });
  assert.throws(() => parseVolume('data:/data'), invalid(/host path "data" must be absolute/));
  assert.throws(() => parseVolume('/srv:data'), invalid(/container path/));
  assert.throws(() => parseVolume('/srv'), invalid(/HOST:CONTAINER/));
  assert.deepEqual(parseVolume('/srv:/d:ro,idmap,U,suid,dev,noexec,z'), {
    type: 'bind', source: '/srv', target: '/d', readonly: true, idmap: true, chown: true, suid: true, dev: true, noexec: true,
  });
  assert.deepEqual(parseVolume('/srv:/d:rw,nosuid,nodev,exec,rbind,Z'), { type: 'bind', source: '/srv', target: '/d', readonly: false });
  assert.throws(() => parseVolume('/srv:/d:shared'), invalid(/unsupported option "shared"/));
  assert.throws(() => parseVolume('/srv:/d:ro,rw'), invalid(/option "rw" conflicts/));
  assert.deepEqual(parseTmpfs('/tmp'), { type: 'tmpfs', target: '/tmp' });
  assert.deepEqual(parseTmpfs('/tmp:size=64m,mode=1777'), { type: 'tmpfs', target: '/tmp', options: 'size=64m,mode=1777' });
  assert.throws(() => parseTmpfs('tmp'), invalid(/absolute/));
  assert.throws(() => parseTmpfs('/t:a b'), invalid(/options/));
});

test('-u, --restart, --stop-signal, --stop-timeout', () => {
  assert.equal(parseUser('nginx'), 'nginx');
  assert.equal(parseUser('1000:1000'), '1000:1000');
  for (const s of ['', 'a:b:c', 'a b', ':g']) assert.throws(() => parseUser(s), invalid(/-u/), s);
  assert.deepEqual(parseRestart('no'), { policy: 'no' });
  assert.deepEqual(parseRestart('on-failure:3'), { policy: 'on-failure', maxRetries: 3 });
  assert.deepEqual(parseRestart('unless-stopped'), { policy: 'always' });
  for (const s of ['sometimes', 'always:3', 'on-failure:x', 'on-failure:0']) assert.throws(() => parseRestart(s), invalid(/--restart/), s);
  assert.equal(parseSignal('TERM'), 'SIGTERM');
  assert.equal(parseSignal('sigquit'), 'SIGQUIT');
  assert.equal(parseSignal('9'), 'SIGKILL');
  assert.equal(parseSignal('37'), 'SIGRTMIN+3');
  assert.equal(parseSignal('RTMIN+3'), 'SIGRTMIN+3');
  assert.equal(parseSignal('SIGRTMAX'), 'SIGRTMIN+30');
  for (const s of ['0', '99', 'NOPE', 'SIGTERM\nBoot=yes']) assert.throws(() => parseSignal(s), invalid(/--stop-signal/), s);
  assert.equal(parseStopTimeout('30'), 30);
  assert.throws(() => parseStopTimeout('1.5'), invalid(/--stop-timeout/));
});
