/**
 * @module runtime/bwrap/layer-apply
 * Rootless layer apply for dir snapshots: GNU tar extracts a layer *inside* the user's
 * mapping (container root = the user, container IDs 1… = the subordinate range), so files
 * land with their final owners and are never chowned afterwards; then OCI whiteouts become
 * overlayfs ones in the same namespace: `.wh.NAME` → a 0:0 character device (allowed in a
 * user namespace since Linux 5.8), `.wh..wh..opq` → `user.overlay.opaque=y` (the
 * xattr the launcher's `userxattr` overlay reads).
 * Hostile archives: GNU tar strips leading "/", skips members with ".." and turns symlinks
 * whose target is absolute or has ".." into placeholders until the end of the run, so no
 * member is written through one; and it all runs with the user's own rights only. Device
 * nodes cannot be created without privileges and are skipped, as rootless Podman does.
 * Checks on the layer as a whole (bombs, size) belong to snapshot/validate, which a
 * rootless unpacker should run on the stream before this.
 */
import { BerthError } from '../../base/errors.ts';
import { run } from '../../base/exec.ts';
import type { IdRange } from './types.ts';

/** Runs as root of the mapping; $1 = destination, $2 = layer file (tar, gzip or zstd). */
export const APPLY_SCRIPT = `set -eu
cd "$1"
tar --extract --file="$2" --numeric-owner --same-owner --preserve-permissions && rc=0 || rc=$?
find . -name '.wh.*' -exec sh -c '
  for f; do
    d=\${f%/*}; b=\${f##*/}
    case $b in
      .wh..wh..opq) setfattr -n user.overlay.opaque -v y -- "$d" ;;
      .wh..wh.*) ;;
      *) rm -rf -- "$d/\${b#.wh.}"; mknod -- "$d/\${b#.wh.}" c 0 0 ;;
    esac
    rm -f -- "$f"
  done' sh {} +
exit "$rc"
`;

const SKIPPABLE = [/Cannot mknod: Operation not permitted/, /Exiting with failure status due to previous errors/];

export function applyLayerArgv(opts: { subuid: IdRange; subgid: IdRange; dest: string; layer: string }): string[] {
  for (const [k, p] of [['dest', opts.dest], ['layer', opts.layer]] as const) {
    if (!p.startsWith('/') || p.includes('\0') || p.split('/').includes('..')) throw new BerthError('INVALID_ARGUMENT', `${k} "${p}" must be an absolute path without ".."`);
  }
  return [
    'unshare', '--user', '--map-user=0', '--map-group=0', `--map-users=${opts.subuid.start},1,${opts.subuid.count}`,
    `--map-groups=${opts.subgid.start},1,${opts.subgid.count}`, '--', 'sh', '-c', APPLY_SCRIPT, 'berth-layer-apply', opts.dest, opts.layer,
  ];
}

/**
 * Extracts `layer` into the existing, empty directory `dest` (owned by the user). Refuses
 * with HOSTILE_LAYER when tar reports anything but skipped device nodes.
 */
export async function applyLayerRootless(opts: { subuid: IdRange; subgid: IdRange; dest: string; layer: string; timeoutMs?: number }): Promise<void> {
  const r = await run(applyLayerArgv(opts), { reject: false, timeoutMs: opts.timeoutMs ?? 600_000 });
  // Skipped device nodes make tar exit 2; they alone are not a failure.
  const errors = r.stderr.split('\n').filter((l) => l.trim() !== '' && !SKIPPABLE.some((re) => re.test(l)));
  if (r.exitCode === 0 || (r.exitCode === 2 && errors.length === 0)) return;
  throw new BerthError('HOSTILE_LAYER', `applying layer ${opts.layer} failed (tar exit ${r.exitCode}): ${errors.slice(0, 3).join('; ') || r.stderr.trim()}`, {
    details: { layer: opts.layer, errors },
  });
}
