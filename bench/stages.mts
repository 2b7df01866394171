/**
 * bench/stages.mts — where a cold pull's time goes, stage by stage, on the bench images'
 * blobs read from local disk (page cache warm), all layers of an image in parallel like
 * `berth pull` does:
 *
 *   floor     `igzip -dc BLOB > /dev/null` per layer, run in parallel (the issue's floor)
 *   inflate   berth's decompressor (igzip child or node:zlib) → discard
 *   digest    + sha256 of the tar (diff ID)
 *   validate  + tar parser + LayerValidator (no tree, no writes)
 *   write     + the EROFS writer: tree, data and metadata into an image on BENCH_DIR
 *             (= SnapshotStore.unpack minus locking/commit, which `store` adds)
 *   store     the full SnapshotStore.unpack (lock, work area, commit rename), with the
 *             TypeScript writer (BERTH_EROFS_WRITER=ts, set below)
 *   native    berth-helper erofs-write on the compressed blob (a pull's default): igzip
 *             forked by the helper, parse, validate, write and diff ID outside Node
 * Each stage's share = its time minus the previous stage's, over `store`.
 *   cold      `store` again, once per fresh process (STAGES_COLD=1): a pull is one short
 *             process, so its parser, validator and writer run before V8 has optimised
 *             them; the stages above are medians of runs in one warm process. cold - store
 *             is what the JIT's warm-up costs a real pull.
 * Plus zstd: zstd-napi vs `zstd -dc` on a zstd recompression of the Debian layers.
 *
 * usage: node --import tsx bench/stages.mts BENCH_DIR [IMAGE...]   (RUNS=5)
 * Output: one JSON line per image/stage on stdout (median ms), a table on stderr.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable, pipeline, type Readable } from 'node:stream';
import { run } from '../src/base/exec.ts';
import { DigestStream, type Digest } from '../src/base/digest.ts';
import { chainIds } from '../src/oci/chain-id.ts';
import { layerCompression, type Compression } from '../src/oci/media-types.ts';
import type { Descriptor, ImageConfig, Index, Manifest } from '../src/oci/types.ts';
import { createDecompressor, gzipEngine, zstdEngine } from '../src/snapshot/decompress.ts';
import { writeLayerImage } from '../src/snapshot/erofs/index.ts';
import { writeLayerImageNative } from '../src/snapshot/erofs/native.ts';
import { helperPath } from '../src/native/helper.ts';
import { TarParser } from '../src/snapshot/erofs/tar.ts';
import { LayerValidator } from '../src/snapshot/validate.ts';
import { SnapshotStore } from '../src/snapshot/store.ts';
import { defaultPolicy } from '../src/snapshot/types.ts';

// The stages are the pipeline's costs on the main thread. (A pull runs big layers in a
// worker thread; under tsx a worker would also pay for compiling the sources again.)
process.env.BERTH_UNPACK_WORKER ??= '0';
process.env.BERTH_EROFS_WRITER ??= 'ts'; // the stages measure the TypeScript pipeline; 'native' the helper
const [benchDir, ...names] = process.argv.slice(2);
if (!benchDir) throw new Error('usage: stages.mts BENCH_DIR [IMAGE...]');
const images = names.length ? names : ['busybox', 'debian', 'many-small-files'];
const RUNS = Number(process.env.RUNS ?? 5);
const scratch = process.env.BENCH_STAGES_SCRATCH ?? join(benchDir, 'work', `stages-${process.pid}`);

interface Layer { desc: Descriptor; diffId: Digest; chainId: Digest; path: string; compression: Compression }

async function layersOf(name: string): Promise<Layer[]> {
  const layout = join(benchDir!, 'images', name);
  const blob = (d: string) => join(layout, 'blobs', 'sha256', d.slice(7));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as Index;
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as Manifest;
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as ImageConfig;
  const ids = chainIds(config.rootfs.diff_ids);
  return manifest.layers.map((desc, i) => ({ desc, diffId: config.rootfs.diff_ids[i]!, chainId: ids[i]!, path: blob(desc.digest), compression: layerCompression(desc.mediaType)! }));
}

const sink = (): Writable => new Writable({ highWaterMark: 1 << 20, write: (_c, _e, cb) => cb() });
function done(...streams: Array<NodeJS.ReadableStream | NodeJS.WritableStream>): Promise<void> {
  return new Promise((res, rej) => (pipeline as unknown as (...a: unknown[]) => void)(...streams, (e: Error | null) => (e ? rej(e) : res())));
}
const open = (l: Layer): Readable => createReadStream(l.path, { highWaterMark: 1 << 20 });

type Stage = (l: Layer, i: number) => Promise<void>;
const stages: Array<[string, Stage]> = [
  ['floor', async (l) => {
    await run(['sh', '-c', l.compression === 'gzip' ? `igzip -dc < '${l.path}' > /dev/null` : l.compression === 'zstd' ? `zstd -dcq < '${l.path}' > /dev/null` : `cat '${l.path}' > /dev/null`]);
  }],
  ['inflate', (l) => done(open(l), createDecompressor(l.compression, l.desc.size), sink())],
  ['digest', (l) => done(open(l), createDecompressor(l.compression, l.desc.size), new DigestStream('sha256'), sink())],
  ['validate', async (l) => {
    const v = new LayerValidator(defaultPolicy({ allowDevices: true }));
    const p = new TarParser({
      entry: (e) => v.check({ name: e.name, type: e.type, size: e.size, linkname: e.linkname, devmajor: e.devmajor, devminor: e.devminor }),
      data: () => {}, hole: () => {}, end: () => {},
    });
    await done(open(l), createDecompressor(l.compression, l.desc.size), new DigestStream('sha256'), new Writable({ highWaterMark: 1 << 20, write: (c: Buffer, _e, cb) => { p.push(c); cb(); } }));
    p.end();
  }],
  ['write', async (l, i) => {
    const h = new DigestStream('sha256');
    const s = open(l);
    const d = createDecompressor(l.compression, l.desc.size);
    s.pipe(d).pipe(h);
    await writeLayerImage(h, join(scratch, `${i}.erofs`), defaultPolicy({ allowDevices: true }));
  }],
  ['store', async (l) => {
    const store = new SnapshotStore(join(scratch, 'store'), { format: 'erofs' });
    await store.unpack({ chainId: l.chainId, diffId: l.diffId, descriptor: l.desc, compressed: open(l) });
  }],
  // what a pull runs by default: the whole layer in berth-helper (igzip child → parse →
  // validate → write → diff ID), Node only feeding it the compressed bytes
  ['native', async (l, i) => {
    const r = await writeLayerImageNative(helperPath(), open(l), { imagePath: join(scratch, `${i}.n.erofs`), policy: defaultPolicy({ allowDevices: true }), compression: l.compression, what: l.desc.digest, size: l.desc.size });
    if (r.diffId !== l.diffId) throw new Error(`native writer: diff ID ${r.diffId}, expected ${l.diffId}`);
  }],
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One `store` run in this (fresh) process: the cold-JIT figure of the TypeScript writer. */
async function coldOnce(name: string): Promise<void> {
  const layers = await layersOf(name);
  const store = stages.find(([s]) => s === 'store')![1];
  const t0 = performance.now();
  await Promise.all(layers.map((l, i) => store(l, i)));
  process.stdout.write(`${JSON.stringify({ image: name, stage: 'cold', ms: Math.round(performance.now() - t0) })}\n`);
}

async function coldTimes(name: string): Promise<number[]> {
  const xs: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    await rm(join(scratch, 'store'), { recursive: true, force: true });
    const res = await run([process.execPath, ...process.execArgv, process.argv[1] as string, benchDir as string, name], {
      env: { ...process.env, STAGES_COLD: '1', BENCH_STAGES_SCRATCH: scratch },
      timeoutMs: 300_000,
    });
    const line = res.stdout.trim().split('\n').pop() ?? '';
    xs.push((JSON.parse(line) as { ms: number }).ms);
  }
  return xs;
}

async function main(): Promise<void> {
  if (process.env.STAGES_COLD === '1') return coldOnce(images[0] as string);
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  const table: string[] = [`gzip engine: ${gzipEngine()}, ${RUNS} runs, median ms (share of 'store')`];
  for (const name of images) {
    const layers = await layersOf(name);
    const times: Record<string, number> = {};
    for (const [stage, fn] of stages) {
      const xs: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        await rm(join(scratch, 'store'), { recursive: true, force: true });
        for (let i = 0; i < layers.length; i++) for (const f of [`${i}.erofs`, `${i}.n.erofs`]) await rm(join(scratch, f), { force: true });
        const t0 = performance.now();
        await Promise.all(layers.map((l, i) => fn(l, i)));
        xs.push(performance.now() - t0);
      }
      times[stage] = median(xs);
      console.log(JSON.stringify({ image: name, stage, ms: Math.round(times[stage]!), runs: xs.map(Math.round) }));
    }
    const total = times.store!;
    let prev = 0;
    const parts = ['inflate', 'digest', 'validate', 'write', 'store'].map((s) => {
      const inc = times[s]! - prev;
      prev = times[s]!;
      return `${s} +${inc.toFixed(0)} (${((inc / total) * 100).toFixed(0)}%)`;
    });
    parts.push(`native (the default) ${times.native!.toFixed(0)} = ${(times.native! / times.floor!).toFixed(2)}× floor`);
    const cold = await coldTimes(name);
    const coldMs = median(cold);
    console.log(JSON.stringify({ image: name, stage: 'cold', ms: Math.round(coldMs), runs: cold }));
    table.push(`${name}: floor ${times.floor!.toFixed(0)} ms; ${parts.join(', ')}; total ${total.toFixed(0)} ms = ${(total / times.floor!).toFixed(2)}× floor; cold process ${coldMs.toFixed(0)} ms (JIT warm-up +${(coldMs - total).toFixed(0)})`);
  }
  // zstd-napi vs zstd -dc on the Debian layers recompressed with zstd
  if (images.includes('debian')) {
    const layers = await layersOf('debian');
    const zs: string[] = [];
    for (const [i, l] of layers.entries()) {
      const z = join(scratch, `l${i}.tar.zst`);
      await run(['sh', '-c', `igzip -dc < '${l.path}' | zstd -q -3 -T0 -o '${z}'`]);
      zs.push(z);
    }
    const napi: number[] = [];
    const cli: number[] = [];
    const child: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      let t0 = performance.now();
      process.env.BERTH_ZSTD = 'napi'; // the in-process engine (berth's default is the zstd child)
      await Promise.all(zs.map((z) => done(createReadStream(z, { highWaterMark: 1 << 20 }), createDecompressor('zstd'), sink())));
      delete process.env.BERTH_ZSTD;
      napi.push(performance.now() - t0);
      t0 = performance.now();
      await Promise.all(zs.map((z) => run(['sh', '-c', `zstd -dcq < '${z}' > /dev/null`])));
      cli.push(performance.now() - t0);
      t0 = performance.now();
      await Promise.all(zs.map((z) => done(createReadStream(z, { highWaterMark: 1 << 20 }), createDecompressor('zstd'), sink())));
      child.push(performance.now() - t0);
    }
    console.log(JSON.stringify({ image: 'debian', stage: 'zstd-napi', ms: Math.round(median(napi)) }));
    console.log(JSON.stringify({ image: 'debian', stage: 'zstd-dc', ms: Math.round(median(cli)) }));
    console.log(JSON.stringify({ image: 'debian', stage: 'zstd-berth', engine: zstdEngine(), ms: Math.round(median(child)) }));
    table.push(`debian as zstd -3: zstd-napi ${median(napi).toFixed(0)} ms vs zstd -dc ${median(cli).toFixed(0)} ms; berth's decompressor (${zstdEngine()}) into node ${median(child).toFixed(0)} ms`);
  }
  await rm(scratch, { recursive: true, force: true });
  await writeFile('/dev/stderr', table.join('\n') + '\n');
}

await main();
