/**
 * @module bench/testhost
 * bench/testhost.mts STATE_DIR IMAGE_LAYOUT... — boots a test host (systemd as PID 1 in
 * an nspawn container sharing /usr, see test/testhost/README.md) for the `start` section's
 * detached rows, which need systemd as PID 1 and this VM's PID 1 is not. Imports each
 * OCI layout into berth's store inside (as bench-<dirname>:latest), writes the test host's
 * leader PID to STATE_DIR/leader and keeps it up until SIGTERM/SIGINT, then powers it off.
 * run.sh drives berth inside with `nsenter -t LEADER -a` (berth -d only talks to systemd,
 * so it need not sit in the test host's cgroups).
 * Run: node --import tsx bench/testhost.mts DIR LAYOUT...
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { bootTestHost, repoRoot } from '../test/testhost/index.ts';

const [state, ...layouts] = process.argv.slice(2);
if (!state) {
  process.stderr.write('usage: testhost.mts STATE_DIR IMAGE_LAYOUT...\n');
  process.exit(2);
}
mkdirSync(join(state, 'berth'), { recursive: true });
mkdirSync(join(state, 'machines'), { recursive: true });
const t0 = performance.now();
const host = await bootTestHost({
  name: `bench-${process.pid}`,
  persistentMachinesDir: join(state, 'machines'),
  persistentDirs: [{ host: join(state, 'berth'), target: '/var/lib/berth' }],
  binds: layouts.map((l) => ({ host: l, ro: true })),
});
for (const l of layouts) {
  await host.run([join(repoRoot, 'bin/berth'), 'image', 'import', l, `bench-${basename(l)}:latest`]);
}
writeFileSync(join(state, 'leader'), `${host.leaderPid}\n`);
process.stderr.write(`test host up in ${Math.round(performance.now() - t0)} ms, leader ${host.leaderPid}\n`);
const stop = async (): Promise<void> => {
  await host.poweroff();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
setInterval(() => {}, 1 << 30);
