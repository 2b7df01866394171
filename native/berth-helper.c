/*
 * berth-helper: one static, multi-call helper for every privileged syscall berth makes.
 * It replaces the embedded python3 ctypes program, the perl syscall() calls and nsenter,
 * and includes what was berth-setuser. Installed with berth (dist/libexec/berth-helper,
 * root-owned), never into a writable store.
 *
 *   mount --target DIR --upper DIR --work DIR [--idmap BASE:SIZE] LAYER...   machine rootfs
 *         [--owner UID:GID --mkdir PATH...]                                   (and mkdirs inside it, once mounted)
 *   umount DIR                                                                every mount on DIR
 *   mount-erofs IMAGE DIR                                                     one EROFS layer (ro,nosuid,nodev)
 *   probe-erofs IMAGE                                                         can this store mount EROFS?
 *   mkdirs ROOT UID GID PATH...                                               mkdir -p inside ROOT
 *   read ROOT PATH MAXBYTES                                                   bounded read inside ROOT
 *   exec --leader PID [--user U[:G]] [--cwd DIR] [--errfd N] -- CMD [ARG...]  enter a container
 *   setuser USER[:GROUP] -- CMD [ARG...]                                      (also as argv[0] "setuser")
 *   netns-exec NETNS CONFIG -- CMD [ARG...]                                   configure a machine's netns, exec CMD in it
 *   private-tmpfs DIR [--mount MOUNT-ARG...] -- CMD [ARG...]                  CMD in a private mount ns, a tmpfs on DIR
 *   seccomp-probe CACHE NSPAWN                                                compile nspawn's seccomp filter once (seccomp.c)
 *   nspawn-start FILTER [--mount MOUNT-ARG...] -- NSPAWN ARG...               nspawn, with the cached filter when it applies
 *                                                                             (and the machine's root mounted first)
 *   seccomp-dump PID                                                          a process's seccomp programs, oldest first
 *   erofs-write --image PATH --tails PATH ...                               a layer tar on stdin into an EROFS image (erofs.c)
 *   seccomp-init NEXT ARG...                   (as argv[0] "seccomp-init")   a machine's PID 1: load the cached filter, exec NEXT
 *
 * Every failure is one line "berth-helper: STEP PATH: ERRNO_NAME (strerror)" and an exit
 * status per class (helper.h), so berth maps it to a BerthError naming the step and errno.
 */
#include "helper.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

int g_errfd = 2;
int g_fixed_status = 0;

int status_for_errno(int e) {
  switch (e) {
  case ENOENT: case ENOTDIR: case ESRCH: return HX_NOTFOUND;
  case EPERM: case EACCES: case EROFS: return HX_PERM;
  case ENOSYS: case EOPNOTSUPP: case ENODEV: case ENOTBLK: return HX_UNSUPPORTED;
  case ELOOP: case EXDEV: return HX_REFUSED;
  case ENOSPC: case EDQUOT: return HX_NOSPACE;
  case EEXIST: return HX_EXISTS;
  case EBUSY: return HX_BUSY;
  default: return HX_FAIL;
  }
}

/* Control characters in container-controlled paths must not forge a second line. */
static void put_clean(char *buf, size_t *n, size_t cap, const char *s) {
  for (; s && *s && *n + 1 < cap; s++) buf[(*n)++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
}

void report(const char *step, const char *path, const char *name, const char *msg) {
  char line[2048];
  size_t n = 0;
  put_clean(line, &n, sizeof line, "berth-helper: ");
  put_clean(line, &n, sizeof line, step);
  if (path && *path) {
    put_clean(line, &n, sizeof line, " ");
    put_clean(line, &n, sizeof line, path);
  }
  put_clean(line, &n, sizeof line, ": ");
  put_clean(line, &n, sizeof line, name);
  put_clean(line, &n, sizeof line, " (");
  put_clean(line, &n, sizeof line, msg);
  put_clean(line, &n, sizeof line, ")");
  line[n++] = '\n';
  for (size_t off = 0; off < n;) {
    ssize_t w = write(g_errfd, line + off, n - off);
    if (w <= 0) break;
    off += (size_t)w;
  }
}

_Noreturn void fail_msg(int status, const char *step, const char *path, const char *name, const char *msg) {
  report(step, path, name, msg);
  _exit(g_fixed_status ? g_fixed_status : status);
}

_Noreturn void fail(int status, const char *step, const char *path, int err) {
  const char *name = strerrorname_np(err);
  fail_msg(status ? status : status_for_errno(err), step, path, name ? name : "EUNKNOWN", strerror(err));
}

_Noreturn void usage(const char *text) {
  fail_msg(HX_USAGE, "usage", text, "EINVAL", "invalid arguments");
}

/* mkdir -p of an absolute host path of berth's own (never container content). */
void mkdir_p(const char *path, mode_t mode) {
  char buf[4096];
  if (path[0] != '/') fail_msg(HX_USAGE, "mkdir", path, "EINVAL", "not an absolute path");
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) fail_msg(HX_USAGE, "mkdir", path, "ENAMETOOLONG", "path too long");
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, mode) != 0 && errno != EEXIST) fail(0, "mkdir", buf, errno);
      *p = c;
      if (!c) break;
    }
  }
}

/* Writes all of p; 0, or -1 with errno set. */
int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int sys_openat2(int dirfd, const char *path, int flags, unsigned long long resolve) {
  struct open_how how = { .flags = (unsigned long long)flags, .mode = 0, .resolve = resolve };
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

int main(int argc, char **argv) {
  const char *self = argc > 0 ? base_name(argv[0]) : "";
  /* Bound into containers as /run/host/berth/setuser: argv[0] selects the command. */
  if (strcmp(self, "setuser") == 0 || strcmp(self, "berth-setuser") == 0) return cmd_setuser(argc - 1, argv + 1);
  int r = seccomp_argv0(self, argc, argv);
  if (r >= 0) return r;
  if (argc < 2) usage("berth-helper mount|umount|mount-erofs|probe-erofs|mkdirs|read|exec|netns-exec|private-tmpfs|setuser|seccomp-probe|nspawn-start|seccomp-dump|rmtree|erofs-write ...");
  const char *cmd = argv[1];
  static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
    { "mount", cmd_mount }, { "umount", cmd_umount }, { "mount-erofs", cmd_mount_erofs },
    { "probe-erofs", cmd_probe_erofs }, { "mkdirs", cmd_mkdirs }, { "read", cmd_read },
    { "exec", cmd_exec }, { "setuser", cmd_setuser }, { "netns-exec", cmd_netns_exec },
    { "private-tmpfs", cmd_private_tmpfs }, { "seccomp-probe", cmd_seccomp_probe },
    { "nspawn-start", cmd_nspawn_start }, { "seccomp-dump", cmd_seccomp_dump },
    { "rmtree", cmd_rmtree }, { "erofs-write", cmd_erofs_write },
  };
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    if (strcmp(cmd, cmds[i].name) == 0) return cmds[i].fn(argc - 2, argv + 2);
  }
  fail_msg(HX_USAGE, "command", cmd, "EINVAL", "unknown command");
}
