/**
 * @module cli/commands/images
 * Local image commands: images/ls, inspect, rmi, prune, fsck, import, export, mount, umount.
 */
import { stat } from 'node:fs/promises';
import type { GlobalOptions } from '../program.ts';
import { openServices } from '../services.ts';
import { formatTable, timeAgo } from '../table.ts';
import { humanBytes } from '../progress.ts';
import { inspectJSON, listImages, resolveLocal, resolveOne } from '../../image/local.ts';
import { BerthError, isBerthError } from '../../base/errors.ts';
import { isManifestType } from '../../oci/media-types.ts';

export async function listCommand(flags: { json?: boolean; quiet?: boolean; digests?: boolean; trunc?: boolean }, g: GlobalOptions): Promise<void> {
  const { store } = await openServices(g, { unpack: false });
  const images = await listImages(store);
  images.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || a.name.localeCompare(b.name));
  const id = (d: string) => (flags.trunc === false ? d : d.slice(7, 19));
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(images.map((i) => ({
      Name: i.name, Repository: i.repository, Tag: i.tag, Id: i.id, Digest: i.digest, IndexDigest: i.indexDigest,
      Created: i.created, Size: i.size, Platform: i.platform,
    })), null, 2)}\n`);
    return;
  }
  if (flags.quiet) {
    process.stdout.write([...new Set(images.map((i) => id(i.id)))].map((s) => `${s}\n`).join(''));
    return;
  }
  const headers = flags.digests ? ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'] : ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'];
  const rows = images.map((i) => {
    const r = [i.repository, i.tag];
    if (flags.digests) r.push(i.indexDigest ?? i.digest);
    r.push(id(i.id), timeAgo(i.created), humanBytes(i.size));
    return r;
  });
  process.stdout.write(formatTable(headers, rows));
}

export async function inspectCommand(refs: string[], _flags: unknown, g: GlobalOptions): Promise<void> {
  const { store } = await openServices(g, { unpack: false });
  const out = [];
  for (const r of refs) out.push(inspectJSON(await resolveOne(store, r)));
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

export async function removeCommand(refs: string[], flags: { force?: boolean }, g: GlobalOptions): Promise<void> {
  const { store } = await openServices(g, { unpack: false });
  const { openManager } = await import('../manager.ts');
  const uses = (await (await openManager(g)).imageUsers()).map((u) => ({ machine: u.container, digest: u.digest }));
  let missing: BerthError | undefined;
  for (const r of refs) {
    try {
      const entries = await resolveLocal(store, r);
      const users = uses.filter((u) => entries.some((e) => e.descriptor.digest === u.digest)).map((u) => u.machine);
      if (users.length && !flags.force) {
        throw new BerthError('FAILED_PRECONDITION', `image ${r} is used by container${users.length > 1 ? 's' : ''} ${users.join(', ')} (remove ${users.length > 1 ? 'them' : 'it'} first, or untag anyway with -f; its layers stay while a container uses them)`);
      }
      for (const e of entries) {
        await store.deleteRef(e.name);
        process.stdout.write(`Untagged: ${e.name}\n`);
      }
    } catch (e) {
      if (isBerthError(e, 'NOT_FOUND')) {
        if (!flags.force) {
          process.stderr.write(`berth: ${e.message}\n`);
          missing = e;
        }
        continue;
      }
      throw e;
    }
  }
  if (missing) throw new BerthError('NOT_FOUND', refs.length > 1 ? 'some images were not found' : missing.message);
}

export async function pruneCommand(_flags: unknown, g: GlobalOptions): Promise<void> {
  const { openManager } = await import('../manager.ts');
  const r = await (await openManager(g)).prune();
  process.stdout.write(`Removed ${r.blobs} blobs and ${r.snapshots} snapshots, freed ${humanBytes(r.freedBytes)}\n`);
}

export async function fsckCommand(flags: { repair?: boolean; json?: boolean }, g: GlobalOptions): Promise<void> {
  const { fsckStore } = await import('../../image/maintenance.ts');
  const svc = await openServices(g);
  const findings = await fsckStore(svc, { repair: flags.repair === true });
  const open = findings.filter((f) => !f.repaired);
  if (flags.json) process.stdout.write(`${JSON.stringify(findings, null, 2)}\n`);
  else {
    for (const f of findings) process.stdout.write(`${f.repaired ? 'repaired' : 'error'}: ${f.message}\n`);
    if (!open.length) process.stdout.write(`ok: ${svc.root} is clean\n`);
  }
  if (open.length) throw new BerthError('CORRUPT', `${open.length} problem${open.length > 1 ? 's' : ''} found in ${svc.root}`);
}

export async function importCommand(path: string, name: string | undefined, _flags: unknown, g: GlobalOptions): Promise<void> {
  const svc = await openServices(g);
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new BerthError('NOT_FOUND', `no such file or directory: ${path}`);
  const archive = await import('../../image/archive/index.ts');
  const r = st.isDirectory()
    ? await archive.importOCILayout(svc.store, path, { name })
    : await archive.importDockerArchive(svc.store, path, { name });
  const { ensureSnapshots } = await import('../../image/maintenance.ts');
  for (const i of r) {
    if (isManifestType(i.descriptor.mediaType)) await ensureSnapshots(svc, i.digest);
    process.stdout.write(`Loaded image: ${i.name ?? '<untagged>'} (${i.digest})\n`);
  }
}

export async function exportCommand(refs: string[], flags: { output: string; format: 'oci' | 'docker-archive' }, g: GlobalOptions): Promise<void> {
  const { store } = await openServices(g, { unpack: false });
  const entries = [];
  for (const r of refs) entries.push(...(await resolveLocal(store, r)));
  const archive = await import('../../image/archive/index.ts');
  if (flags.format === 'docker-archive') await archive.exportDockerArchive(store, entries, flags.output);
  else await archive.exportOCILayout(store, entries, flags.output);
  process.stdout.write(`Exported ${entries.map((e) => e.name).join(', ')} to ${flags.output}\n`);
}

export async function mountCommand(ref: string, dir: string | undefined, _flags: unknown, g: GlobalOptions): Promise<void> {
  const { mountImage } = await import('../../image/maintenance.ts');
  const svc = await openServices(g);
  const target = await mountImage(svc, await resolveOne(svc.store, ref), dir);
  process.stdout.write(`${target}\n`);
}

export async function umountCommand(what: string, _flags: unknown, g: GlobalOptions): Promise<void> {
  const { unmountImage } = await import('../../image/maintenance.ts');
  const svc = await openServices(g);
  await unmountImage(svc, what);
}
