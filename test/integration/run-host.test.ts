/**
 * berth run on this host itself, whose PID 1 is not systemd (the CI machines' case): the
 * attached path works (nspawn with --register=no, no noise about /run/systemd/nspawn), exit
 * codes come back, --rm leaves nothing, and -d is refused with a clear error.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { buildImage } from '../fixtures/images.ts';
import { berthEnv, type BerthEnv } from '../fixtures/berth.ts';

const pid1 = await readFile('/proc/1/comm', 'utf8').then((s) => s.trim(), () => '');
const skip = pid1 === 'systemd' ? 'PID 1 is systemd here; the machine-* tests cover that host' : false;
let b: BerthEnv;

before(async () => {
  if (skip) return;
  b = await berthEnv('berth-host-run');
  const img = await buildImage('busybox');
  const r = await b.run(['image', 'import', img.layoutDir, 'hostrun/busybox:latest']);
  assert.equal(r.code, 0, r.stderr);
});

test('attached run: output, exit code, -u, --rm leaves no machine behind', { skip }, async () => {
  const r = await b.run(['run', '--rm', '--name', 'hostrun-a', 'hostrun/busybox', 'sh', '-c', 'echo hi; id -u; exit 3']);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, 'hi\n0\n');
  assert.doesNotMatch(r.stderr, /Attempted to remove/);
  const u = await b.run(['run', '--rm', '-u', '1234:5678', 'hostrun/busybox', 'id']);
  assert.match(u.stdout, /^uid=1234 gid=5678/);
  const left = [...(await readdir('/etc/systemd/nspawn').catch(() => [])), ...(await readdir('/var/lib/machines').catch(() => []))];
  assert.ok(!left.some((n) => n.includes('hostrun-a')), left.join(' '));
});

test('-d without systemd as PID 1: refused, nothing created', { skip }, async () => {
  const r = await b.run(['run', '-d', '--name', 'hostrun-d', 'hostrun/busybox', 'sleep', '10']);
  assert.equal(r.code, 17, r.stderr);
  assert.match(r.stderr, /PID 1 .* not systemd/);
  const left = await readdir('/etc/systemd/nspawn').catch(() => [] as string[]);
  assert.ok(!left.includes('hostrun-d.nspawn'));
});
