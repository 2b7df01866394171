/**
 * @module native
 * berth-helper (native/*.c), the one static helper for every privileged syscall: mounts
 * (file-backed EROFS with a loop-device fallback, idmapped layers, overlay), resolution
 * inside a container's root (mkdirs, bounded reads), confined exec and `-u`. This module
 * finds the installed binary, builds its command lines and turns its one-line errors into
 * BerthErrors naming the failing syscall and errno.
 */
export { helperPath, runHelper, execArgs, mkdirsArgs, mkdirsInRoot, mountMkdirOptions, readInRoot, checkHelperOwnership, type ExecArgs } from './helper.ts';
export { parseHelperError, helperError, HELPER_EXIT, type HelperFailure } from './errors.ts';
