/**
 * @module testhost
 * Test-host harness for berth's integration tests: systemd booted in a systemd-nspawn
 * container that shares the host's /usr, so berth can be driven against a real PID 1
 * systemd on a machine whose own PID 1 is not systemd. The only public surface of
 * test/testhost; see README.md beside it for the recipe and its pitfalls.
 */
export type { PoweroffOptions, TestHost, TestHostBind, TestHostOptions, TestHostRunOptions } from './types.ts';
export { bootTestHost } from './boot.ts';
export { withTestHost, useTestHost } from './node-test.ts';
export { repoRoot } from './nspawn-args.ts';
export { poweroffAll, reclaimDeadHosts } from './registry.ts';
export { makeBusyboxMachine } from './busybox.ts';
