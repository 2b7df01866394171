/**
 * @module runtime/bwrap/launcher
 * The one piece of glue bwrap 0.8 (Debian 12) needs: it has no --overlay and cannot call
 * newuidmap, so the unit runs `unshare` (which maps the user's subordinate ranges through
 * newuidmap/newgidmap and makes a private mount namespace) and then this fixed POSIX sh
 * script as root of that user namespace. It
 *  1. mounts the rootfs overlay (kernel >= 5.11 allows it inside a user namespace;
 *     `userxattr` because trusted.* xattrs are out of reach there),
 *  2. refuses to go on when a path bwrap will mount onto is, or lies below, a symlink in
 *     the container's own files: bwrap resolves its mount targets before pivot_root, so
 *     a symlink would point it at host paths. Nothing of the container runs at this point,
 *     so the check cannot race with it,
 *  3. for the private network: binds a new network namespace to a file, lets pasta
 *     configure it (pasta forks into the background once the namespace is up, so the
 *     payload never starts without its network) and enters it; pasta's own messages are
 *     kept for the failure report only,
 *  4. execs bwrap, which becomes the unit's main process.
 * Arguments have a fixed arity, so no value is ever parsed as shell code:
 *   LOWERS UPPER WORK MERGED CHECK NET NETNS TCP UDP -- BWRAP_ARGV...
 * Exit status 125 means the launcher itself failed (the message is in the journal).
 */

export const LAUNCHER_EXIT = 125;

export const LAUNCHER_SCRIPT = `#!/bin/sh
# berth-sandbox-launch: written by berth (src/runtime/bwrap/launcher.ts); do not edit.
set -eu
fail() { echo "berth-sandbox-launch: $*" >&2; exit ${LAUNCHER_EXIT}; }
[ "$#" -ge 11 ] && [ "\${10}" = "--" ] || fail "bad arguments"
lowers=$1 upper=$2 work=$3 merged=$4 check=$5 net=$6 netns=$7 tcp=$8 udp=$9
shift 10
mount -t overlay -o "lowerdir=$lowers,upperdir=$upper,workdir=$work,userxattr" berth "$merged" ||
  fail "cannot mount the root filesystem overlay on $merged"
set -f
IFS=:
for p in $check; do
  cur=$merged
  IFS=/
  for c in $p; do
    [ -n "$c" ] || continue
    cur=$cur/$c
    [ ! -L "$cur" ] || fail "/$p in the container's root is or lies below a symbolic link; refusing to mount over it"
  done
  IFS=:
done
unset IFS
set +f
case $net in
  none|host) exec "$@" ;;
  pasta)
    : > "$netns" || fail "cannot create $netns"
    unshare --net="$netns" true || fail "cannot create the network namespace"
    # pasta's notes ("No external routable interface for IPv6") would land on an attached
    # run's terminal; they matter only when it fails. It closes its stdio once it daemonises.
    msg=$(pasta --config-net --quiet --netns "$netns" -t "$tcp" -u "$udp" -T none -U none --no-map-gw 2>&1) ||
      fail "pasta could not set up the network (is /dev/net/tun usable by this user?): $msg"
    exec nsenter --net="$netns" -- "$@" ;;
  *) fail "unknown network mode $net" ;;
esac
`;
