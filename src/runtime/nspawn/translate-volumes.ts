/**
 * @module runtime/nspawn/translate-volumes
 * Pure translation of a container's volumes (bind mounts of host paths) into the steps that
 * stage them, nosuid and nodev, before nspawn binds them into the container.
 *
 * Why staging: nspawn's Bind= takes no mount flags (only rbind/norbind and idmap), so a
 * volume would keep the source's suid/dev semantics inside the container. Each volume is
 * first bound, with `nosuid,nodev` (and `ro`, `noexec` when asked), at
 * /run/berth/volumes/NAME/I — a directory only root can enter, so the staging mount does not
 * bypass the permissions of the source's parents — and nspawn binds that staging mount into
 * the container (a bind mount keeps the flags of its source mount, and inside the container's
 * user namespace they are locked). nspawn's own ReadOnly= remounts the root recursively, which
 * is why the volumes are not mounted into the rootfs directly.
 *
 * The same steps run as ExecStartPre=/ExecStopPost= of the unit (drop-in
 * 20-berth-volumes.conf) and from the attached `berth run`. The staging bind is not
 * recursive: mounts below the source are not carried into the container, so the flags hold
 * for everything the container can reach through the volume.
 */
import type { BindMountSpec, ContainerSpec } from '../../container/spec.ts';
import { validateMachineName } from '../../container/names.ts';
import { quoteExecLine } from '../../unit/quote.ts';
import { UnitFile } from '../../unit/unit-file.ts';
import { checkAbsPath } from './translate-values.ts';

export const VOLUME_STAGE_ROOT = '/run/berth/volumes';
export const VOLUMES_DROPIN = '20-berth-volumes.conf';

/** What the source of a volume is: the staging mount point must be of the same kind. */
export type VolumeKind = 'dir' | 'file';

export interface VolumeStep {
  argv: string[];
  /** Clean-up of leftovers: a failure is expected and harmless (unit: `-` prefix). */
  ignoreFailure: boolean;
}

export interface VolumeSteps {
  pre: VolumeStep[];
  post: VolumeStep[];
}

/** The staging mount point of spec.mounts[index]. */
export function volumeStage(name: string, index: number): string {
  return `${VOLUME_STAGE_ROOT}/${validateMachineName(name)}/${index}`;
}

/** Mount flags of a volume's staging bind. */
export function volumeMountOptions(m: BindMountSpec): string {
  const o: string[] = [];
  if (m.readonly) o.push('ro');
  if (!m.suid) o.push('nosuid');
  if (!m.dev) o.push('nodev');
  if (m.noexec) o.push('noexec');
  return o.length ? o.join(',') : 'defaults';
}

/**
 * The steps for spec's bind mounts; `kinds[i]` is the kind of spec.mounts[i]'s source
 * (default 'dir'). Empty when the spec has no bind mounts.
 */
export function volumeSteps(spec: ContainerSpec, kinds: readonly (VolumeKind | undefined)[] = []): VolumeSteps {
  const name = validateMachineName(spec.name);
  const dir = `${VOLUME_STAGE_ROOT}/${name}`;
  const pre: VolumeStep[] = [];
  const post: VolumeStep[] = [];
  const step = (argv: string[], ignoreFailure = false): VolumeStep => ({ argv, ignoreFailure });
  spec.mounts.forEach((m, i) => {
    if (m.type !== 'bind') return;
    const stage = volumeStage(name, i);
    const source = checkAbsPath(`bind source for ${m.target}`, m.source);
    if (pre.length === 0) pre.push(step(['/usr/bin/install', '-d', '-m', '0700', '/run/berth', VOLUME_STAGE_ROOT, dir]));
    pre.push(kinds[i] === 'file' ? step(['/usr/bin/install', '-m', '0600', '/dev/null', stage]) : step(['/usr/bin/install', '-d', '-m', '0700', stage]));
    pre.push(step(['/usr/bin/mount', '--bind', '-o', volumeMountOptions(m), '--', source, stage]));
    post.push(step(['/usr/bin/umount', '-q', '-l', stage], true));
    post.push(step(kinds[i] === 'file' ? ['/usr/bin/rm', '-f', '--', stage] : ['/usr/bin/rmdir', '--', stage], true));
  });
  if (post.length) post.push(step(['/usr/bin/rmdir', '--', dir], true));
  return { pre, post };
}

/** The drop-in that stages the volumes; undefined without bind mounts. */
export function volumesDropIn(spec: ContainerSpec, kinds: readonly (VolumeKind | undefined)[] = []): UnitFile | undefined {
  const steps = volumeSteps(spec, kinds);
  if (steps.pre.length === 0) return undefined;
  const u = new UnitFile(VOLUMES_DROPIN);
  u.comment('Written by berth: each volume is bound nosuid,nodev at its staging point, and nspawn binds it from there.');
  const line = (s: VolumeStep): string => `${s.ignoreFailure ? '-' : ''}${quoteExecLine(s.argv, 'volume step')}`;
  for (const s of steps.pre) u.add('Service', 'ExecStartPre', line(s));
  for (const s of steps.post) u.add('Service', 'ExecStopPost', line(s));
  return u;
}
