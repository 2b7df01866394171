/**
 * @module base/fs.test
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDir, writeFileAtomic } from './fs.ts';
import { isBerthError } from './errors.ts';

test('writeFileAtomic writes, replaces, sets the mode and leaves no temp files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-fs-'));
  const p = join(dir, 'index.json');
  await writeFileAtomic(p, 'one');
  await writeFileAtomic(p, Buffer.from('two'), { mode: 0o600 });
  assert.equal(await readFile(p, 'utf8'), 'two');
  assert.equal((await stat(p)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(dir), ['index.json']);
});

test('writeFileAtomic into a missing directory is NOT_FOUND', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-fs-'));
  await assert.rejects(writeFileAtomic(join(dir, 'no', 'x'), 'x'), (e) => isBerthError(e, 'NOT_FOUND'));
});

test('ensureDir makes missing parents and accepts an existing directory', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-fs-'));
  const deep = join(dir, 'a', 'b', 'c');
  await ensureDir(deep);
  await ensureDir(deep);
  assert.ok((await stat(deep)).isDirectory());
});
