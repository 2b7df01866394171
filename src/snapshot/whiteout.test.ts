import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extract } from 'tar-stream';
import { applyWhiteouts, checkPlan, whiteoutTar } from './whiteout.ts';

async function headers(buf: Buffer): Promise<Array<{ name: string; type: string; pax?: unknown; devmajor: number }>> {
  const out: Array<{ name: string; type: string; pax?: unknown; devmajor: number }> = [];
  const x = extract();
  x.on('entry', (h, s, next) => {
    out.push({ name: h.name, type: h.type, pax: h.pax ?? undefined, devmajor: h.devmajor });
    s.on('end', () => next());
    s.resume();
  });
  await new Promise<void>((res, rej) => {
    x.on('finish', () => res());
    x.on('error', rej);
    x.end(buf);
  });
  return out;
}

test('whiteouts become char 0/0, opaque dirs get <prefix>opaque=y and keep their mtime', async () => {
  const root = await mkdtemp(join(tmpdir(), 'berth-wh-'));
  try {
    await mkdir(join(root, 'etc'));
    await mkdir(join(root, 'opt/d'), { recursive: true });
    const buf = await whiteoutTar(root, { whiteouts: ['etc/motd'], opaques: ['opt/d'] }, 'user.overlay.');
    const hs = await headers(buf as Buffer);
    assert.deepEqual(hs.find((h) => h.name === 'etc/motd')?.type, 'character-device');
    const d = hs.find((h) => h.name === 'opt/d/') as { pax: Record<string, string> };
    assert.equal(d.pax['SCHILY.xattr.user.overlay.opaque'], 'y');
    assert.match(d.pax.mtime ?? '', /^\d+\.\d{9}$/);
    assert.ok(hs.some((h) => h.name === 'etc/' && h.type === 'directory'), 'parent re-emitted to restore its mtime');
    assert.equal(await whiteoutTar(root, { whiteouts: [], opaques: [] }, 'trusted.overlay.'), undefined);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the applier refuses any plan path that crosses a symlink or a non-directory, and creates nothing', async () => {
  const { mkdtemp: mk, symlink, writeFile, readdir } = await import('node:fs/promises');
  const outside = await mk(join(tmpdir(), 'berth-wh-outside-'));
  const root = await mk(join(tmpdir(), 'berth-wh-'));
  try {
    await writeFile(join(outside, 'victim'), 'canary');
    await symlink(outside, join(root, 'd'));
    await writeFile(join(root, 'f'), 'x');
    await mkdir(join(root, 'real'));
    await symlink('../d', join(root, 'real/up'));
    for (const plan of [
      { whiteouts: ['d/victim'], opaques: [] }, { whiteouts: [], opaques: ['d'] }, { whiteouts: ['d/new/x'], opaques: [] },
      { whiteouts: ['f/x'], opaques: [] }, { whiteouts: [], opaques: ['f'] }, { whiteouts: ['real/up/victim'], opaques: [] },
      { whiteouts: ['a/../d/victim'], opaques: [] },
    ]) {
      await assert.rejects(applyWhiteouts(root, plan, 'trusted.overlay.'), { code: 'HOSTILE_LAYER' }, JSON.stringify(plan));
    }
    assert.deepEqual(await readdir(outside), ['victim']);
    assert.deepEqual((await readdir(root)).sort(), ['d', 'f', 'real']);
  } finally {
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  }
});

test('whiteouts for names this layer has are dropped; missing parents become real directories', async () => {
  const root = await mkdtemp(join(tmpdir(), 'berth-wh-'));
  try {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(root, 'keep'), 'x');
    const checked = await checkPlan(root, { whiteouts: ['keep', 'a/b/gone'], opaques: ['c'] });
    assert.deepEqual(checked.whiteouts, ['a/b/gone']);
    const { lstat } = await import('node:fs/promises');
    assert.ok((await lstat(join(root, 'a/b'))).isDirectory());
    assert.ok((await lstat(join(root, 'c'))).isDirectory());
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
