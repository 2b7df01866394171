import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareStoreRoot } from './root-check.ts';
import { openStore } from './local-store.ts';

const uid = process.getuid?.() ?? 0;
const denied = (re: RegExp) => ({ code: 'PERMISSION_DENIED', message: re });

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-rootcheck-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a mkdtemp root (0700, ours) and roots created below it are accepted', () => withTmp(async (dir) => {
  await prepareStoreRoot(dir);
  await prepareStoreRoot(join(dir, 'a/b/store'));
  assert.equal((await stat(join(dir, 'a/b/store'))).mode & 0o777, 0o755);
  await openStore(join(dir, 'a/b/store'));
}));

test('group- or world-writable roots are refused with the path and the fix', () => withTmp(async (dir) => {
  for (const mode of [0o777, 0o770, 0o775, 0o1777, 0o757]) {
    const root = join(dir, `m${mode.toString(8)}`);
    await mkdir(root);
    await chmod(root, mode);
    await assert.rejects(prepareStoreRoot(root), denied(new RegExp(`${root} is (group|world)-writable .*chmod go-w ${root}`)));
    await assert.rejects(openStore(root), { code: 'PERMISSION_DENIED' });
  }
}));

test('a root owned by someone else is refused (also through a symlink)', { skip: uid !== 0 && 'needs root to chown' }, () => withTmp(async (dir) => {
  const root = join(dir, 'theirs');
  await mkdir(root, { mode: 0o755 });
  await chown(root, 4242, 4242);
  await assert.rejects(prepareStoreRoot(root), denied(/owned by uid 4242, not by you/));
  await symlink(root, join(dir, 'link'));
  await assert.rejects(prepareStoreRoot(join(dir, 'link')), denied(/owned by uid 4242/));
}));

test('directories berth creates are 0755 whatever the umask; existing ancestors are the user\'s choice', () => withTmp(async (dir) => {
  await mkdir(join(dir, 'x'));
  await chmod(join(dir, 'x'), 0o1777); // like /tmp
  const old = process.umask(0);
  try {
    await prepareStoreRoot(join(dir, 'x/a/store'));
  } finally {
    process.umask(old);
  }
  assert.equal((await stat(join(dir, 'x/a'))).mode & 0o777, 0o755);
  assert.equal((await stat(join(dir, 'x/a/store'))).mode & 0o777, 0o755);
}));

test('a root that is a file is refused', () => withTmp(async (dir) => {
  await writeFile(join(dir, 'f'), '');
  await assert.rejects(prepareStoreRoot(join(dir, 'f')), denied(/not a directory/));
}));
