import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extract } from 'tar-stream';
import { whiteoutTar } from './whiteout.ts';

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
