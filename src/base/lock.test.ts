/**
 * @module base/lock.test
 * Contention between real processes, stale-lock stealing, timeout and cancellation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile, access } from 'node:fs/promises';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireLock, tryAcquireLock, withLock, processStartTime } from './lock.ts';
import { isBerthError } from './errors.ts';

const LOCK_TS = fileURLToPath(new URL('./lock.ts', import.meta.url));

/** Child: takes the lock, logs enter/leave around a short critical section. */
const CHILD = `
import { appendFileSync } from 'node:fs';
const { withLock } = await import(process.argv[1]);
const [lockPath, logPath, id, rounds] = process.argv.slice(2);
for (let i = 0; i < Number(rounds); i++) {
  await withLock(lockPath, async () => {
    appendFileSync(logPath, 'enter ' + id + '\\n');
    await new Promise((r) => setTimeout(r, 15));
    appendFileSync(logPath, 'leave ' + id + '\\n');
  });
}
`;

function runChild(args: string[], script = CHILD): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, LOCK_TS, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    c.on('error', reject);
    c.on('exit', (code) => resolve(code));
  });
}

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'berth-lock-'));
}

test('two processes contending never overlap', async () => {
  const dir = await tmp();
  const lockPath = join(dir, 'locks', 'x.lock');
  const log = join(dir, 'log');
  await writeFile(log, '');
  const codes = await Promise.all([runChild([lockPath, log, 'a', '5']), runChild([lockPath, log, 'b', '5'])]);
  assert.deepEqual(codes, [0, 0]);
  const lines = (await readFile(log, 'utf8')).trim().split('\n');
  assert.equal(lines.length, 20);
  for (let i = 0; i < lines.length; i += 2) {
    const who = lines[i]!.split(' ')[1];
    assert.equal(lines[i], `enter ${who}`);
    assert.equal(lines[i + 1], `leave ${who}`, `interleaved at line ${i}: ${lines.join(' | ')}`);
  }
  await assert.rejects(access(lockPath));
});

test('a stale lock from a dead pid is stolen', async () => {
  const dir = await tmp();
  const lockPath = join(dir, 'x.lock');
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(dead.stdout);
  await writeFile(lockPath, JSON.stringify({ pid, start: '1', host: hostname(), token: 'dead' }));
  const lock = await acquireLock(lockPath, { timeoutMs: 2000 });
  const owner = JSON.parse(await readFile(lockPath, 'utf8')) as { pid: number };
  assert.equal(owner.pid, process.pid);
  await lock.release();
  await assert.rejects(access(lockPath));
});

test('a recycled pid (live pid, different start time) is stale', async () => {
  const dir = await tmp();
  const lockPath = join(dir, 'x.lock');
  const start = processStartTime('self');
  assert.ok(start, '/proc available');
  await writeFile(lockPath, JSON.stringify({ pid: process.pid, start: String(Number(start) + 12345), host: hostname(), token: 'old' }));
  const lock = await tryAcquireLock(lockPath);
  assert.ok(lock);
  await lock.release();
});

test('a live holder blocks; timeout and abort are reported', async () => {
  const dir = await tmp();
  const lockPath = join(dir, 'x.lock');
  const first = await acquireLock(lockPath);
  assert.equal(await tryAcquireLock(lockPath), undefined);
  await assert.rejects(acquireLock(lockPath, { timeoutMs: 100 }), (e) => isBerthError(e, 'TIMEOUT'));
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(acquireLock(lockPath, { signal: ac.signal }), (e) => isBerthError(e, 'CANCELLED'));
  const order: string[] = [];
  const waiter = withLock(lockPath, async () => {
    order.push('second');
  });
  await new Promise((r) => setTimeout(r, 60));
  order.push('first-release');
  await first.release();
  await waiter;
  assert.deepEqual(order, ['first-release', 'second']);
});

test('locks held at process exit are removed', async () => {
  const dir = await tmp();
  const lockPath = join(dir, 'x.lock');
  const script = `const { acquireLock } = await import(process.argv[1]); await acquireLock(process.argv[2]); process.exit(0);`;
  assert.equal(await runChild([lockPath], script), 0);
  await assert.rejects(access(lockPath));
});

test('a lock left by a SIGKILLed process is stolen', async () => {
  const dir = await tmp();
  const lockPath = join(dir, 'x.lock');
  const script = `const { acquireLock } = await import(process.argv[1]); await acquireLock(process.argv[2]); process.kill(process.pid, 'SIGKILL');`;
  await runChild([lockPath], script);
  await access(lockPath); // left behind
  const lock = await acquireLock(lockPath, { timeoutMs: 2000 });
  await lock.release();
});

test('a waiter past its backoff takes the lock as soon as it is released, not at its next poll', async () => {
  const dir = await tmp();
  const lockPath = join(dir, 'w.lock');
  const gaps: number[] = [];
  for (let i = 0; i < 5; i++) {
    const held = await acquireLock(lockPath);
    let got = 0;
    const waiter = acquireLock(lockPath).then((l) => {
      got = performance.now();
      return l;
    });
    await new Promise((r) => setTimeout(r, 700)); // the poll interval is 150-250 ms by now
    const released = performance.now();
    await held.release();
    await (await waiter).release();
    gaps.push(got - released);
  }
  gaps.sort((a, b) => a - b);
  // Polling alone would land anywhere in 0-250 ms after the release (median ~100 ms).
  assert.ok((gaps[2] as number) < 40, `release-to-acquire gaps: ${gaps.map((g) => g.toFixed(1)).join(', ')} ms`);
});
