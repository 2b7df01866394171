import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../content/local-store.ts';
import { MT } from '../oci/media-types.ts';
import { listImages } from './local.ts';
import { fsckStore } from './maintenance.ts';

test('an image whose config fails validation is not listed, and fsck names the field', async () => {
  const root = await mkdtemp(join(tmpdir(), 'berth-maint-'));
  try {
    const store = await openStore(root);
    const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', config: { User: 0 }, rootfs: { type: 'layers', diff_ids: [] } }));
    const cd = await store.putBlob(config);
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: { mediaType: MT.ociConfig, digest: cd, size: config.length }, layers: [] }));
    await store.setRef('docker.io/library/bad:1', { mediaType: MT.ociManifest, digest: await store.putBlob(m), size: m.length });
    assert.deepEqual(await listImages(store), []);
    const findings = await fsckStore({ root, store }, { repair: false });
    assert.ok(findings.some((f) => f.kind === 'bad-metadata' && /config\.User/.test(f.message)), JSON.stringify(findings));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
