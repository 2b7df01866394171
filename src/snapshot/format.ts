/**
 * @module snapshot/format
 * Which format a store's new snapshots use, decided ONCE per store and recorded in
 * `<snapshot root>/format` ("erofs" or "dir"), then honoured by every pull and run.
 *
 * EROFS needs a mount: file-backed (kernel >= 6.12, and a filesystem under the store that
 * can back it: tmpfs cannot, ENOTBLK) or a loop device. Where neither works (no
 * /dev/loop-control, e.g. inside a container or a test host), every EROFS snapshot would
 * be unusable, so the store uses directory snapshots instead. The first use probes with a
 * 4 KiB EROFS image (embedded below: an empty root directory, made by
 * `mkfs.erofs -x1 -T0 --all-root` once; berth writes its own images and needs no erofs-utils) through `berth-helper probe-erofs`, records the
 * answer and says it once on stderr (the notice callback). An explicit format
 * (`--snapshot-format`, `BERTH_SNAPSHOT_FORMAT`) wins and is not recorded. Delete the
 * file to probe again (e.g. after a kernel upgrade).
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { zlib } from '../base/builtins.ts';
import { isBerthError } from '../base/errors.ts';
import { writeFileAtomic } from '../base/fs.ts';
import { runHelper } from '../native/index.ts';
import type { SnapshotFormat } from './types.ts';

export const FORMAT_FILE = 'format';
const PROBE_IMAGE = 'H4sIAAAAAAACA2NgGAWjYBSMVPDo4dcHs/7+6WcGsnkYVBgYsahBFpOTXbmtq9Fz7sLL8tXvSpxOU2o/CxC/dWRikIby/wMBsrwKlJZgYIKzJYFsPT290cgbBaNgFIyCUTAKRsEoGAWjgEQAAL5X5fEAEAAA';

export interface FormatOptions {
  /** Chosen by the user for this run: used as is, not recorded. */
  explicit?: SnapshotFormat;
  /** Receives the one-time explanation when the store falls back to directories. */
  notice?: (message: string) => void;
}

/** Parses the recorded format; undefined for a missing or unknown file. Pure. */
export function parseFormatFile(text: string | undefined): SnapshotFormat | undefined {
  const v = text?.trim();
  return v === 'erofs' || v === 'dir' ? v : undefined;
}

/** Can EROFS images in root be mounted? undefined = yes; otherwise why not. */
async function probeErofs(root: string): Promise<string | undefined> {
  const probe = join(root, `.format-probe.${process.pid}.erofs`);
  try {
    // node:zlib only here, when a store is first probed
    await writeFile(probe, zlib().gunzipSync(Buffer.from(PROBE_IMAGE, 'base64')), { mode: 0o600 });
    await runHelper(['probe-erofs', probe], { context: 'EROFS' });
    return undefined;
  } catch (e) {
    if (isBerthError(e) && (e.details.noLoop === true || e.code === 'UNSUPPORTED' || e.code === 'PERMISSION_DENIED')) return e.message;
    throw e;
  } finally {
    await rm(probe, { force: true });
  }
}

/** The format for new snapshots in the store at root (see the module comment). */
export async function storeFormat(root: string, opts: FormatOptions = {}): Promise<SnapshotFormat> {
  if (opts.explicit) return opts.explicit;
  const file = join(root, FORMAT_FILE);
  const recorded = parseFormatFile(await readFile(file, 'utf8').catch(() => undefined));
  if (recorded) return recorded;
  await mkdir(root, { recursive: true });
  const why = await probeErofs(root);
  const format: SnapshotFormat = why === undefined ? 'erofs' : 'dir';
  await writeFileAtomic(file, `${format}\n`);
  if (why !== undefined) opts.notice?.(`snapshots in ${root} will be plain directories: ${why} (decided once, recorded in ${file})`);
  return format;
}
