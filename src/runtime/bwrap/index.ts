/**
 * @module runtime/bwrap
 * The user-container backend: bubblewrap in a user namespace that maps the user's
 * subordinate IDs (newuidmap/newgidmap via unshare), rootfs = overlay of dir snapshots
 * mounted inside it, network none/host/pasta, supervised by systemd user units.
 */
export { BwrapRuntime, createBwrapRuntime, TEMPLATE_NAME, type BwrapRuntimeOptions } from './runtime.ts';
export { toSandboxCommand, PODMAN_DEFAULT_CAPS, type SandboxCommand } from './translate-argv.ts';
export { toMachineDropIn, toTemplateUnit, unitName } from './translate-unit.ts';
export { toPastaPorts } from './pasta.ts';
export { LAUNCHER_SCRIPT, LAUNCHER_EXIT } from './launcher.ts';
export { checkTun, probeHost, probeStoreFilesystem, type HostFacts } from './host.ts';
export { parseSubIds, pickSubIdRange } from './subid.ts';
export type { BwrapOptions, IdRange, SandboxPaths } from './types.ts';
export { applyLayerRootless, applyLayerArgv } from './layer-apply.ts';
