import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitWords, formatRecord, liveRecord, parseProcStat, parseRecord, procStat } from './foreground.ts';

test('records: only "PID STARTTIME" parses; anything else is "not running"', () => {
  assert.deepEqual(parseRecord(formatRecord({ pid: 42, startTime: '123456' })), { pid: 42, startTime: '123456' });
  for (const bad of ['', '42', '0 1\n', '-1 5', '42 1 2', '42 x', ' 42 1', '42 1\n\n', '1'.repeat(11) + ' 1', '42 1\nextra']) assert.equal(parseRecord(bad), undefined, JSON.stringify(bad));
});

test('/proc/PID/stat: a comm with spaces and parentheses does not shift the fields', () => {
  const tail = 'S 1 2 3 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100';
  assert.deepEqual(parseProcStat(`77 (a) b (c) ${tail}`), { state: 'S', startTime: '987654' });
  assert.deepEqual(parseProcStat(`77 (x) ${tail}`), { state: 'S', startTime: '987654' });
  assert.equal(parseProcStat('77 (x) S 1 2'), undefined);
  assert.equal(parseProcStat('garbage'), undefined);
});

test('liveRecord: this process passes, a reused PID (other start time) or a dead one does not', async () => {
  const d = mkdtempSync(join(tmpdir(), 'berth-fg-'));
  try {
    const f = join(d, 'attached');
    const me = await procStat(process.pid);
    assert.ok(me);
    writeFileSync(f, formatRecord({ pid: process.pid, startTime: me.startTime }));
    assert.equal((await liveRecord(f))?.pid, process.pid);
    writeFileSync(f, formatRecord({ pid: process.pid, startTime: String(Number(me.startTime) + 1) }));
    assert.equal(await liveRecord(f), undefined);
    writeFileSync(f, formatRecord({ pid: 2 ** 22 + 1, startTime: '1' }));
    assert.equal(await liveRecord(f), undefined);
    assert.equal(await liveRecord(join(d, 'missing')), undefined);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('exit words are the ones ExecStopPost= records', () => {
  assert.equal(exitWords(0, null), 'success exited 0');
  assert.equal(exitWords(7, null), 'exit-code exited 7');
  assert.equal(exitWords(null, 'SIGTERM'), 'signal killed TERM');
});
