import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectBus } from './connection.ts';
import { isBerthError } from '../base/errors.ts';

test('no bus socket: fails at once, naming the socket', async () => {
  const t0 = Date.now();
  await assert.rejects(connectBus('unix:path=/nonexistent/berth-bus'), (e: unknown) => isBerthError(e, 'CONNECTION_REFUSED') && /berth-bus.*ENOENT/.test((e as Error).message));
  assert.ok(Date.now() - t0 < 1000);
});

test('a bus that drops connections during authentication (dbus-daemon under load) is retried until the deadline', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bus-'));
  let seen = 0;
  const srv = createServer((c) => {
    seen++;
    c.destroy();
  }).listen(join(dir, 'bus'));
  try {
    const t0 = Date.now();
    await assert.rejects(connectBus(`unix:path=${join(dir, 'bus')}`, { timeoutMs: 1500 }), (e: unknown) => isBerthError(e, 'CONNECTION_REFUSED'));
    assert.ok(seen >= 3, `${seen} attempts`);
    assert.ok(Date.now() - t0 < 3000);
  } finally {
    srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bus that refuses EXTERNAL is PERMISSION_DENIED, not retried', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bus-'));
  let seen = 0;
  const srv = createServer((c) => {
    seen++;
    c.on('data', () => c.write('REJECTED EXTERNAL\r\n'));
  }).listen(join(dir, 'bus'));
  try {
    await assert.rejects(connectBus(`unix:path=${join(dir, 'bus')}`, { timeoutMs: 3000 }), (e: unknown) => isBerthError(e, 'PERMISSION_DENIED'));
    assert.equal(seen, 1);
  } finally {
    srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
