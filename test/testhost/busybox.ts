/**
 * @module testhost/busybox
 * A tiny bootable machine for nested-container tests: the host's static /bin/busybox in
 * /var/lib/machines/NAME with busybox init as /sbin/init (systemd-nspawn@.service passes
 * --boot), an /etc/inittab that only runs sysinit (no gettys on absent ttys), an
 * os-release (nspawn --boot checks for one) and NAME.nspawn with KillSignal=SIGUSR2:
 * busybox init ignores SIGRTMIN+3, so without it `systemctl stop` hangs for 90 s.
 */
import type { TestHost } from './types.ts';

const APPLETS = ['sh', 'ls', 'cat', 'echo', 'sleep', 'id', 'ps', 'mount', 'hostname', 'true', 'false', 'touch', 'stat', 'ip'];

const SCRIPT = `set -eu
d=/var/lib/machines/$1
rm -rf "$d"
mkdir -p "$d/bin" "$d/sbin" "$d/etc" "$d/usr" "$d/proc" "$d/sys" "$d/dev" "$d/run" "$d/tmp" "$d/var" "$d/root"
cp /bin/busybox "$d/bin/busybox"
shift
for a in "$@"; do ln -s busybox "$d/bin/$a"; done
ln -s ../bin/busybox "$d/sbin/init"
printf 'ID=busybox\\nNAME=BusyBox\\n' > "$d/etc/os-release"
printf '::sysinit:/bin/echo bb-sysinit-done\\n::restart:/sbin/init\\n' > "$d/etc/inittab"
mkdir -p /etc/systemd/nspawn
printf '[Exec]\\nKillSignal=SIGUSR2\\n' > "/etc/systemd/nspawn/\${d##*/}.nspawn"
`;

/**
 * Creates the busybox machine NAME inside the test host (replacing an old one); start it
 * with `systemctl start systemd-nspawn@NAME`.
 */
export async function makeBusyboxMachine(host: TestHost, name: string): Promise<void> {
  await host.exec(['sh', '-c', SCRIPT, 'mkbusybox', name, ...APPLETS]);
}
