/**
 * @module snapshot/bench-formats
 * Measures unpack time per snapshot format on OCI layouts (the bench images):
 *   node --import tsx src/snapshot/bench-formats.ts ROOT LAYOUT... [--format=dir,erofs]
 * Each layout's layers are unpacked from their blobs on disk into a fresh store at ROOT,
 * timed per layer (cold: page cache dropped first when possible), then mounted and
 * unmounted. Prints one line per layer and per image.
 */
import { createReadStream } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../base/digest.ts';
import { run } from '../base/exec.ts';
import type { ImageConfig, Index, Manifest } from '../oci/types.ts';
import { chainIds } from '../oci/chain-id.ts';
import { mountImage, umountImage } from './mount.ts';
import { SnapshotStore } from './store.ts';
import type { SnapshotFormat } from './types.ts';

async function readBlob<T>(layout: string, d: Digest): Promise<T> {
  return JSON.parse(await readFile(join(layout, 'blobs', d.replace(':', '/')), 'utf8')) as T;
}

async function dropCaches(): Promise<void> {
  await writeFile('/proc/sys/vm/drop_caches', '3').catch(() => {});
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const root = args.shift();
  const formats = (args.find((a) => a.startsWith('--format='))?.slice(9) ?? 'dir,erofs').split(',') as SnapshotFormat[];
  const lz4 = false; // mkfs.erofs compression is gone with the in-process writer
  const layouts = args.filter((a) => !a.startsWith('--'));
  if (!root || layouts.length === 0) throw new Error('usage: bench-formats.ts ROOT LAYOUT...');
  for (const format of formats) {
    for (const layout of layouts) {
      await rm(root, { recursive: true, force: true });
      const store = new SnapshotStore(root, { format });
      const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as Index;
      const manifest = await readBlob<Manifest>(layout, index.manifests[0]!.digest);
      const config = await readBlob<ImageConfig>(layout, manifest.config.digest);
      const ids = chainIds(config.rootfs.diff_ids);
      await dropCaches();
      const t0 = performance.now();
      await Promise.all(manifest.layers.map(async (desc, i) => {
        const t = performance.now();
        await store.unpack({ chainId: ids[i]!, diffId: config.rootfs.diff_ids[i]!, descriptor: desc, compressed: createReadStream(join(layout, 'blobs', desc.digest.replace(':', '/'))) });
        console.log(`  ${format}${lz4 ? '+lz4' : ''} layer ${i} (${(desc.size / 1e6).toFixed(1)} MB gz): ${(performance.now() - t).toFixed(0)} ms`);
      }));
      const tu = performance.now() - t0;
      const ts = performance.now();
      await run(['sync', '-f', root]); // writeback is part of the cost: dirty pages must reach disk
      const syncMs = performance.now() - ts;
      const target = join(root, 'rootfs');
      const tm = performance.now();
      await mountImage(store, ids, target);
      const mountMs = performance.now() - tm;
      await dropCaches();
      const tr = performance.now();
      await run(['sh', '-c', `tar -C ${target} -cf - . | cat > /dev/null`]); // cold read of every file
      const readMs = performance.now() - tr;
      await umountImage(store, target);
      const du = (await run(['du', '-sk', root])).stdout.split('\t')[0];
      const trm = performance.now();
      for (const s of await store.list()) await store.remove(s.chainId);
      await run(['sync', '-f', root]);
      const rmMs = performance.now() - trm;
      console.log(`${format}${lz4 ? '+lz4' : ''} ${layout}: unpack ${tu.toFixed(0)} ms, then sync ${syncMs.toFixed(0)} ms, mount ${mountMs.toFixed(0)} ms, cold read-all ${readMs.toFixed(0)} ms, remove+sync ${rmMs.toFixed(0)} ms, disk ${du} KiB`);
    }
  }
}

await main();
