/**
 * bench/rss-1m.mts — peak RSS of the EROFS writer on a layer of N entries (default
 * 1,000,000: 1,000 directories × 999 files of 32-543 bytes, like the 20,000-file bench
 * image, each with a PAX mtime), generated on the fly and fed as a stream (no tar on
 * disk). Prints entries, time, image size and peak RSS (getrusage maxrss), then checks
 * the image with fsck.erofs (metadata only) unless NOFSCK=1.
 *
 * usage: node --import tsx bench/rss-1m.mts DIR [N]
 *   VIA=worker: through the unpack worker; VIA=native: berth-helper erofs-write (a pull's
 *   default), whose own peak RSS is reported (GNU time's %M)
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { run } from '../src/base/exec.ts';
import { writeLayerImage } from '../src/snapshot/erofs/index.ts';
import { defaultPolicy } from '../src/snapshot/types.ts';
import { ingestInWorker } from '../src/snapshot/unpack-worker.ts';
import { header, paxData } from '../test/raw-tar.ts';

const [dir, nArg] = process.argv.slice(2);
if (!dir) throw new Error('usage: rss-1m.mts DIR [N]');
const N = Number(nArg ?? 1_000_000);
const PER_DIR = 1000;

function pad(b: Buffer): Buffer[] {
  const p = (512 - (b.length % 512)) % 512;
  return p ? [b, Buffer.alloc(p)] : [b];
}

function* entries(): Generator<Buffer> {
  let batch: Buffer[] = [];
  let size = 0;
  const flush = function* (): Generator<Buffer> {
    yield Buffer.concat(batch, size);
    batch = [];
    size = 0;
  };
  const push = (b: Buffer): void => {
    batch.push(b);
    size += b.length;
  };
  let made = 0;
  let seed = 1;
  for (let d = 0; made < N; d++) {
    push(header({ name: `data/d${d}/`, type: '5', mode: 0o755 }, 0));
    made++;
    for (let f = 1; f < PER_DIR && made < N; f++, made++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const len = 32 + (seed % 512);
      const px = paxData([['mtime', `1700000000.${seed % 1000000}`]]);
      push(header({ name: 'PaxHeaders/x', type: 'x' }, px.length));
      for (const b of pad(px)) push(b);
      push(header({ name: `data/d${d}/file-${f}.txt`, mode: 0o644 }, len));
      for (const b of pad(Buffer.alloc(len, 97 + (f % 26)))) push(b);
    }
    if (size > 4 << 20) yield* flush();
  }
  push(Buffer.alloc(1024));
  yield* flush();
}

await mkdir(dir, { recursive: true });
const image = join(dir, `rss-${process.pid}.erofs`);
const t0 = performance.now();
const policy = defaultPolicy({ maxEntries: N + 10 });
// VIA=worker: through the unpack worker, as a pull of a big layer runs it (the process's
// RSS then holds both heaps); default: writeLayerImage on the main thread
const native = async (): Promise<{ entries: number; tarBytes: number; helperRssMB: number }> => {
  const { spawn } = await import('node:child_process');
  const { helperPath } = await import('../src/native/helper.ts');
  const c = spawn('/usr/bin/time', ['-f', 'maxrss %M', helperPath(), 'erofs-write', '--image', image, '--tails', `${image}.t`, '--max-bytes', String(policy.maxBytes), '--max-entries', String(policy.maxEntries), '--xattr-prefix', 'trusted', '--allow-devices'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  c.stdout.on('data', (b: Buffer) => (out += b));
  c.stderr.on('data', (b: Buffer) => (err += b));
  const done = new Promise<number | null>((res) => c.on('close', res));
  for (const b of entries()) if (!c.stdin.write(b)) await new Promise((res) => c.stdin.once('drain', res));
  c.stdin.end();
  if ((await done) !== 0) throw new Error(`erofs-write: ${err}`);
  const m = /^ok (\d+) \d+ \d+ (\d+)/.exec(out);
  return { entries: Number(m![1]), tarBytes: Number(m![2]), helperRssMB: Math.round(Number(/maxrss (\d+)/.exec(err)![1]) / 1000) };
};
const r = process.env.VIA === 'native' ? await native() : process.env.VIA === 'worker'
  ? await ingestInWorker(Readable.from(entries()), { imagePath: image, policy, compression: 'none', what: 'rss-1m', size: Infinity }).then((w) => ({ ...w.result }))
  : await writeLayerImage(Readable.from(entries()), image, policy);
const ms = performance.now() - t0;
const maxrss = process.resourceUsage().maxRSS * 1024;
const mu = process.memoryUsage();
console.error(`end: heapUsed ${(mu.heapUsed / 1e6).toFixed(0)} MB, external ${(mu.external / 1e6).toFixed(0)} MB, arrayBuffers ${(mu.arrayBuffers / 1e6).toFixed(0)} MB, rss ${(mu.rss / 1e6).toFixed(0)} MB`);
console.log(JSON.stringify({ entries: r.entries, tarBytes: r.tarBytes, imageBytes: (await stat(image)).size, ms: Math.round(ms), peakRssMB: Math.round(maxrss / 1e6), ...('helperRssMB' in r ? { helperRssMB: r.helperRssMB } : {}) }));
if (process.env.NOFSCK !== '1') {
  const f = await run(['fsck.erofs', image], { reject: false });
  console.log(`fsck.erofs: exit ${f.exitCode} ${f.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
}
await rm(image, { force: true });
