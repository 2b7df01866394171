/*
 * private-tmpfs DIR -- CMD [ARG...]
 *
 * Runs CMD in a mount namespace of its own (propagation private, so nothing mounted there
 * reaches the host) with a fresh tmpfs (mode 0755, nosuid, nodev) on DIR, made if missing.
 * An attached `berth run` on a host without systemd as PID 1 starts systemd-nspawn this
 * way, with DIR = /run/systemd/nspawn: there /run is usually not a tmpfs, and nspawn then
 * refuses to clean up /run/systemd/nspawn/propagate/NAME and leaves it behind. It replaces
 * `unshare --mount --propagation private -- sh -c 'mkdir -p … && mount -t tmpfs … && exec "$@"'`
 * (four processes: unshare, sh, mkdir, mount) with none: it execs CMD itself, so signals
 * sent to it reach CMD directly. DIR is berth's own fixed path, never container content.
 *
 * With --mount, it also mounts the container's root filesystem in that namespace (the
 * arguments of `berth-helper mount`, --mkdir included) before it execs CMD: the attached
 * run then needs no mount and no unmount on the host, two helper runs fewer.
 */
#include "helper.h"
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

int cmd_private_tmpfs(int argc, char **argv) {
  static const char use[] = "berth-helper private-tmpfs DIR [--mount MOUNT-ARG... ] -- CMD [ARG...]";
  if (argc < 3) usage(use);
  const char *dir = argv[0];
  if (dir[0] != '/') fail_msg(HX_USAGE, "private-tmpfs", dir, "EINVAL", "not an absolute path");
  /* --mount: berth-helper mount's arguments, up to the "--" (its paths are absolute, so
   * none of them is "--") */
  int mount_from = 0, sep = 1;
  if (strcmp(argv[1], "--mount") == 0) {
    mount_from = 2;
    for (sep = 2; sep < argc && strcmp(argv[sep], "--") != 0; sep++) {}
  }
  if (sep + 1 >= argc || strcmp(argv[sep], "--") != 0) usage(use);
  char **cmd = argv + sep + 1;
  if (unshare(CLONE_NEWNS) != 0) fail(0, "unshare(CLONE_NEWNS)", NULL, errno);
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(0, "mount(MS_REC|MS_PRIVATE)", "/", errno);
  mkdir_p(dir, 0755);
  if (mount("berth-nspawn", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) fail(0, "mount(tmpfs)", dir, errno);
  /* The rootfs, in this namespace only: it goes away with CMD's last process, so nothing
   * is left mounted on the host however berth ends. All of mount's fds are close-on-exec. */
  if (mount_from) {
    argv[sep] = NULL;
    cmd_mount(sep - mount_from, argv + mount_from);
  }
  execvp(cmd[0], cmd);
  fail(errno == ENOENT ? HX_NOTFOUND : 0, "execvp", cmd[0], errno);
}
