/**
 * @module runtime/nspawn
 * The systemd-nspawn runtime shell: where a machine's files live, its root filesystem
 * (overlay of idmapped layer snapshots, assembled by berth-helper), its UID
 * range, and the systemctl/machinectl/journalctl calls. The pure translators
 * (translate.ts, translate-dropins.ts) live here too; this index re-exports the I/O side.
 */
export * from './paths.ts';
export * from './rootfs.ts';
export * from './userns.ts';
export * from './systemd.ts';
export * from './files.ts';
export { toNspawnFile, payloadOf, INIT_TARGET } from './translate.ts';
export { toServiceDropIns } from './translate-dropins.ts';
export { volumeSteps, VOLUME_STAGE_ROOT, type VolumeKind, type VolumeStep, type VolumeSteps } from './translate-volumes.ts';
export * from './foreground.ts';
export { renameNetworkFiles } from './network.ts';
export { ensureFilterCache, machineFilterFile, renameStartFiles, seccompStart, type SeccompStart } from './seccomp.ts';
export { warmCgroupAttach } from './attach-warm.ts';
