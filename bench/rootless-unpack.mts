/**
 * @module bench/rootless-unpack
 * bench/rootless-unpack.mts STORE LAYOUT — unpacks every layer of an OCI layout (tag
 * "latest") into STORE's dir snapshots with the rootless LayerUnpacker, as the calling
 * user (it reads the user's /etc/subuid range), and prints {"layers":N,"ms":T} where T is
 * the wall time of the unpacks (node's own start-up excluded). What a rootless `berth
 * pull` spends after the download; compare with `podman pull oci:LAYOUT` as the same user.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { Digest } from '../src/base/digest.ts';
import { chainIds } from '../src/oci/chain-id.ts';
import { probeHost } from '../src/runtime/bwrap/index.ts';
import { createRootlessUnpacker } from '../src/snapshot/rootless-unpack.ts';

const [store, layout] = process.argv.slice(2);
if (!store || !layout) {
  process.stderr.write('usage: rootless-unpack.mts STORE LAYOUT\n');
  process.exit(2);
}
const blob = (d: string) => join(layout, 'blobs', d.replace(':', '/'));
const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === 'latest') ?? index.manifests[0]!;
const manifest = JSON.parse(readFileSync(blob(m.digest), 'utf8')) as { config: { digest: string }; layers: Array<{ digest: Digest; mediaType: string; size: number }> };
const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: Digest[] } };
const u = userInfo();
const f = await probeHost({ user: { name: u.username, uid: u.uid, gid: u.gid } });
const unpacker = createRootlessUnpacker({ root: store, idmap: { subuid: f.subuid, subgid: f.subgid } });
const chains = chainIds(config.rootfs.diff_ids);
const t0 = performance.now();
for (const [i, l] of manifest.layers.entries()) {
  await unpacker.unpack({ chainId: chains[i]!, diffId: config.rootfs.diff_ids[i]!, descriptor: l, compressed: createReadStream(blob(l.digest)) });
}
process.stdout.write(`${JSON.stringify({ layers: manifest.layers.length, ms: Math.round(performance.now() - t0) })}\n`);
