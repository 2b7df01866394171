/**
 * @module manager/rootless-unpacker
 * The LayerUnpacker a user's pull uses until runtime/bwrap ships its own: each layer is
 * decompressed to a plain tar in the store's work area (its diff ID checked on the way),
 * then `applyLayerRootless` (runtime/bwrap/layer-apply) extracts it *inside* the user's
 * subordinate-ID mapping into a fresh directory, which is renamed into place as the dir
 * snapshot the bwrap runtime mounts: $STORE/snapshots/dir/<chainID hex>/fs. Files get their
 * final owners as they are written and are never chowned afterwards.
 * Before tar sees a byte, every header of the layer goes through snapshot/validate's
 * LayerValidator (the rules of root's unpacker: no `..`, nothing below a symlink, file or
 * device of the same layer, no replaced symlinks or directories with content, no hardlinks
 * out, size and entry limits), so a layer root refuses is refused here too.
 * Nothing is half-done: a failed layer leaves no snapshot (its work directory is removed
 * inside the same mapping, since its files belong to subordinate IDs).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { digestHex, type Digest } from '../base/digest.ts';
import { BerthError, fromSystemError, isBerthError } from '../base/errors.ts';
import { run } from '../base/exec.ts';
import type { Descriptor } from '../oci/types.ts';
import type { LayerUnpacker } from '../image/pull.ts';
import type { IdRange } from '../runtime/bwrap/types.ts';
import type { EntryHeader } from '../snapshot/validate.ts';

export class RootlessUnpacker implements LayerUnpacker {
  private constructor(private readonly root: string, private readonly subuid: IdRange, private readonly subgid: IdRange) {}

  /** Refuses (FAILED_PRECONDITION, from the bwrap host probe) when the user has no subordinate range or newuidmap. */
  static async open(storeRoot: string): Promise<RootlessUnpacker> {
    const { probeHost } = await import('../runtime/bwrap/host.ts');
    const u = userInfo();
    const f = await probeHost({ user: { name: u.username, uid: u.uid, gid: u.gid } });
    return new RootlessUnpacker(storeRoot, f.subuid, f.subgid);
  }

  private dir(chainId: Digest): string {
    return join(this.root, 'snapshots', 'dir', digestHex(chainId));
  }

  async has(chainId: Digest): Promise<boolean> {
    return existsSync(join(this.dir(chainId), 'fs')) && existsSync(join(this.dir(chainId), 'meta.json'));
  }

  /** rm -rf inside the mapping: the tree holds files of subordinate IDs the user cannot remove directly. */
  private async removeTree(dir: string): Promise<void> {
    if (!existsSync(dir)) return;
    await run(['unshare', '--user', '--map-user=0', '--map-group=0', `--map-users=${this.subuid.start},1,${this.subuid.count}`,
      `--map-groups=${this.subgid.start},1,${this.subgid.count}`, '--', 'rm', '-rf', '--one-file-system', '--', dir], { timeoutMs: 300_000, reject: false });
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }

  async unpack(args: { chainId: Digest; diffId: Digest; descriptor: Descriptor; compressed: Readable; onProgress?: (tarBytes: number) => void }): Promise<void> {
    const { layerCompression } = await import('../oci/media-types.ts');
    const { createDecompressor } = await import('../snapshot/decompress.ts');
    const compression = layerCompression(args.descriptor.mediaType);
    if (compression === undefined) throw new BerthError('UNSUPPORTED', `layer media type ${args.descriptor.mediaType} cannot be applied`, { details: { mediaType: args.descriptor.mediaType } });
    const workRoot = join(this.root, 'snapshots', 'work');
    await mkdir(join(this.root, 'snapshots'), { recursive: true, mode: 0o700 });
    await mkdir(workRoot, { recursive: true, mode: 0o700 });
    const work = join(workRoot, `${digestHex(args.chainId)}.${randomBytes(6).toString('hex')}`);
    await mkdir(join(work, 'fs'), { recursive: true, mode: 0o755 });
    const tarFile = join(work, 'layer.tar');
    try {
      const algo = args.diffId.slice(0, args.diffId.indexOf(':'));
      const hash = createHash(algo === 'sha512' ? 'sha512' : 'sha256');
      let bytes = 0;
      // A decompression bomb stops at root's limit (the validator's maxBytes of file data,
      // plus room for headers), before it fills the user's disk any further.
      const { defaultPolicy } = await import('../snapshot/types.ts');
      const cap = defaultPolicy().maxBytes + (1 << 30);
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          bytes += chunk.length;
          args.onProgress?.(bytes);
          if (bytes > cap) {
            cb(new BerthError('HOSTILE_LAYER', `layer ${args.descriptor.digest} expands beyond ${cap} bytes (limit)`, { details: { limit: cap } }));
            return;
          }
          cb(null, chunk);
        },
      });
      const out = createWriteStream(tarFile, { mode: 0o600 });
      try {
        if (compression === 'none') await pipeline(args.compressed, tap, out);
        else await pipeline(args.compressed, createDecompressor(compression), tap, out);
      } catch (e) {
        throw isBerthError(e) ? e : fromSystemError(e);
      }
      const got = `${algo}:${hash.digest('hex')}`;
      if (got !== args.diffId) throw new BerthError('DIGEST_MISMATCH', `layer ${args.descriptor.digest}: uncompressed content is ${got}, the image config says ${args.diffId}`, { details: { expected: args.diffId, actual: got } });
      await validateTar(tarFile);
      const { applyLayerRootless } = await import('../runtime/bwrap/layer-apply.ts');
      await applyLayerRootless({ subuid: this.subuid, subgid: this.subgid, dest: join(work, 'fs'), layer: tarFile });
      await rm(tarFile, { force: true });
      await writeFile(join(work, 'meta.json'), `${JSON.stringify({ chainId: args.chainId, diffId: args.diffId, format: 'dir', tarBytes: bytes, unpacker: 'rootless' })}\n`);
      await mkdir(join(this.root, 'snapshots', 'dir'), { recursive: true, mode: 0o700 });
      if (!(await this.has(args.chainId))) await this.removeTree(this.dir(args.chainId)); // a partial one from a crash
      if (await this.has(args.chainId)) {
        await this.removeTree(work); // another pull committed it meanwhile: theirs wins
        return;
      }
      await rename(work, this.dir(args.chainId));
    } catch (e) {
      await this.removeTree(work);
      throw e;
    }
  }
}

/** Every header of the (decompressed) layer through LayerValidator; throws its HOSTILE_LAYER / UNSUPPORTED. */
async function validateTar(tarFile: string): Promise<void> {
  const { LayerValidator } = await import('../snapshot/validate.ts');
  const { defaultPolicy } = await import('../snapshot/types.ts');
  const validator = new LayerValidator(defaultPolicy({ allowDevices: true, xattrPrefix: 'user.overlay.' }));
  const parser = extract();
  // The first refusal is kept and the rest of the archive drained (destroying a tar-stream
  // parser from its own entry callback leaves an error without a listener).
  let refusal: unknown;
  parser.on('entry', (h, stream, next) => {
    if (refusal === undefined) {
      try {
        validator.check(h as unknown as EntryHeader);
      } catch (e) {
        refusal = e;
      }
    }
    stream.on('end', () => next());
    stream.resume();
  });
  await pipeline(createReadStream(tarFile), parser);
  if (refusal !== undefined) throw refusal;
}
