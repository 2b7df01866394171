import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePlatform, selectManifest, formatPlatform, hostPlatform } from './platform.ts';
import { isBerthError } from '../base/errors.ts';
import type { Descriptor } from '../oci/types.ts';

const d = (p: Descriptor['platform'], extra: Partial<Descriptor> = {}): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${formatPlatform(p).replace(/\W/g, '').padEnd(64, '0').slice(0, 64)}` as Descriptor['digest'],
  size: 1, platform: p, ...extra,
});

test('parsePlatform normalises aliases', () => {
  assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(parsePlatform('linux/aarch64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.throws(() => parsePlatform('linux'), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => parsePlatform('linux/amd64/v2/x'), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
});

test('selectManifest picks os/arch, skips attestations, prefers exact variant', () => {
  const list = [
    d({ os: 'unknown', architecture: 'unknown' }, { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } }),
    d({ os: 'linux', architecture: 'arm', variant: 'v6' }),
    d({ os: 'linux', architecture: 'arm', variant: 'v7' }),
    d({ os: 'linux', architecture: 'arm64' }),
    d({ os: 'linux', architecture: 'amd64' }),
  ];
  assert.equal(selectManifest(list, parsePlatform('linux/amd64')), list[4]);
  assert.equal(selectManifest(list, parsePlatform('linux/arm/v7')), list[2]);
  assert.equal(selectManifest(list, parsePlatform('linux/arm64')), list[3]);
  assert.throws(() => selectManifest(list, parsePlatform('linux/s390x')), (e) =>
    isBerthError(e, 'UNSUPPORTED') && /available: linux\/arm\/v6/.test((e as Error).message));
  assert.throws(() => selectManifest([list[0]!], parsePlatform('linux/amd64')), (e) => isBerthError(e, 'UNSUPPORTED'));
});

test('hostPlatform is linux', () => {
  assert.equal(hostPlatform().os, 'linux');
});
