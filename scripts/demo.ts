/**
 * berth's main job on a built-in default, offline: build a busybox image from the
 * distribution's busybox-static, serve it from a local registry (Debian's docker-registry on
 * 127.0.0.1, random port), pull it with berth into the store, list and check it, and run it
 * once in the foreground (a real systemd-nspawn container; no systemd as PID 1 needed).
 * Uses the same image builder and registry fixture as the integration tests.
 */
import { spawnSync } from 'node:child_process';
import { buildImage } from '../test/fixtures/images.ts';
import { startRegistry, pushImage } from '../test/fixtures/registry.ts';

const berth = new URL('../bin/berth', import.meta.url).pathname;
const img = await buildImage('busybox');
const reg = await startRegistry();
try {
  await pushImage(reg, img.layoutDir, img.tag, 'demo/busybox:latest');
  const ref = `${reg.host}/demo/busybox:latest`;
  for (const args of [['pull', ref], ['images'], ['image', 'fsck'], ['run', '--rm', ref, 'sh', '-c', 'echo hello from busybox in $(hostname)']]) {
    process.stdout.write(`\n$ berth ${args.join(' ')}\n`);
    const r = spawnSync(berth, args, { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
} finally {
  await reg.stop();
}
