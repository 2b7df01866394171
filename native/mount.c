/*
 * Mounts, with the new mount API only (fsopen/fsconfig/fsmount, open_tree, mount_setattr,
 * move_mount); util-linux 2.38's mount(8) can do neither idmaps nor file-backed EROFS.
 *
 *   mount --target DIR --upper DIR --work DIR [--idmap BASE:SIZE] LAYER...
 *       A machine's root: every LAYER (bottom first; *.erofs = EROFS image, else a
 *       directory) becomes a *detached* mount, read-only, nosuid, nodev, idmapped to
 *       BASE:SIZE when asked, and is handed to overlayfs as /proc/self/fd/N: only the
 *       overlay appears in the mount table, nothing is chowned. Idempotent.
 *   umount DIR                 unmounts every mount stacked on DIR. Idempotent.
 *   mount-erofs IMAGE DIR      one EROFS image at DIR (ro,nosuid,nodev) for image mounts.
 *   probe-erofs IMAGE          exit 0 and print "file" or "loop" when this store can mount
 *                              EROFS images; HX_NOLOOP when it cannot.
 *
 * EROFS: file-backed first (kernel >= 6.12 and a filesystem that can back it: not tmpfs);
 * on ENOTBLK a loop device (LOOP_CTL_GET_FREE + LOOP_CONFIGURE, read-only, autoclear: it
 * goes away with the last mount); with neither, HX_NOLOOP so berth falls back to
 * directory snapshots for the store.
 */
#include "helper.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/loop.h>

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif
#define H_FSOPEN_CLOEXEC 1u
#define H_FSCONFIG_SET_FLAG 0u
#define H_FSCONFIG_SET_STRING 1u
#define H_FSCONFIG_CMD_CREATE 6u
#define H_FSMOUNT_CLOEXEC 1u
#define H_ATTR_RDONLY 0x1ull
#define H_ATTR_NOSUID 0x2ull
#define H_ATTR_NODEV 0x4ull
#define H_ATTR_IDMAP 0x100000ull
#define H_OPEN_TREE_CLONE 1u
#define H_AT_RECURSIVE 0x8000
#define H_MOVE_MOUNT_F_EMPTY_PATH 4u
#define OVERLAY_MAGIC 0x794c7630

struct h_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };

static int set_attr(int mfd, uint64_t set, int userns_fd) {
  struct h_mount_attr a = { .attr_set = set, .attr_clr = 0, .propagation = 0, .userns_fd = userns_fd < 0 ? 0 : (uint64_t)userns_fd };
  return (int)syscall(SYS_mount_setattr, mfd, "", AT_EMPTY_PATH, &a, sizeof a);
}

static int is_mount_point(const char *path) {
  struct statx sx;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, 0, &sx) != 0) return 0;
  return (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* A user namespace with "0 BASE SIZE" as uid and gid map, as an fd. */
static int make_userns(unsigned long base, unsigned long size) {
  int up[2], down[2];
  if (pipe2(up, O_CLOEXEC) || pipe2(down, O_CLOEXEC)) fail(0, "pipe2", NULL, errno);
  pid_t pid = fork();
  if (pid < 0) fail(0, "fork", NULL, errno);
  if (pid == 0) {
    char c = 'u';
    close(up[0]);
    close(down[1]); /* else the read below never sees EOF */
    if (unshare(CLONE_NEWUSER) != 0) _exit(1);
    if (write(up[1], &c, 1) != 1) _exit(1);
    if (read(down[0], &c, 1) < 0) _exit(1);
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  char c = 0;
  if (read(up[0], &c, 1) != 1) {
    waitpid(pid, NULL, 0);
    fail_msg(HX_UNSUPPORTED, "unshare(CLONE_NEWUSER)", NULL, "EPERM", "cannot create a user namespace for the idmap");
  }
  char path[64], map[64];
  snprintf(map, sizeof map, "0 %lu %lu\n", base, size);
  for (int i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, i ? "gid_map" : "uid_map");
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, map, strlen(map)) != (ssize_t)strlen(map)) fail(0, "write", path, errno);
    close(fd);
  }
  snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) fail(0, "open", path, errno);
  close(down[1]);
  waitpid(pid, NULL, 0);
  close(up[0]);
  return nsfd;
}

/* fsopen + source + ro + create; returns the fs context fd, or -errno of the create step. */
static int erofs_context(const char *source, const char **step) {
  int fs = (int)syscall(SYS_fsopen, "erofs", H_FSOPEN_CLOEXEC);
  if (fs < 0) { *step = "fsopen(erofs)"; return -errno; }
  if (syscall(SYS_fsconfig, fs, H_FSCONFIG_SET_STRING, "source", source, 0) != 0) { *step = "fsconfig(source)"; int e = errno; close(fs); return -e; }
  if (syscall(SYS_fsconfig, fs, H_FSCONFIG_SET_FLAG, "ro", NULL, 0) != 0) { *step = "fsconfig(ro)"; int e = errno; close(fs); return -e; }
  if (syscall(SYS_fsconfig, fs, H_FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) { *step = "fsconfig(create)"; int e = errno; close(fs); return -e; }
  return fs;
}

/* A free loop device bound read-only (autoclear) to the image; its fd, or -errno with *step. */
static int loop_attach(const char *image, char *dev, size_t devlen, const char **step) {
  int img = open(image, O_RDONLY | O_CLOEXEC);
  if (img < 0) { *step = "open"; return -errno; }
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) { *step = "open /dev/loop-control"; int e = errno; close(img); return -e; }
  int result = -EBUSY;
  *step = "LOOP_CONFIGURE";
  for (int attempt = 0; attempt < 16; attempt++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) { *step = "LOOP_CTL_GET_FREE"; result = -errno; break; }
    snprintf(dev, devlen, "/dev/loop%d", n);
    int lfd = open(dev, O_RDWR | O_CLOEXEC);
    if (lfd < 0) lfd = open(dev, O_RDONLY | O_CLOEXEC);
    if (lfd < 0) { *step = "open /dev/loopN"; result = -errno; break; }
    struct loop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fd = (unsigned)img;
    cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s", image);
    if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) { result = lfd; break; }
    int e = errno;
    if (e == EINVAL || e == ENOTTY) { /* kernel < 5.8: the two-step way */
      struct loop_info64 info = cfg.info;
      if (ioctl(lfd, LOOP_SET_FD, img) == 0) {
        if (ioctl(lfd, LOOP_SET_STATUS64, &info) == 0) { result = lfd; break; }
        e = errno;
        ioctl(lfd, LOOP_CLR_FD, 0);
      } else {
        e = errno;
      }
    }
    close(lfd);
    result = -e;
    if (e != EBUSY) break; /* lost a race for the free device: take the next one */
  }
  close(ctl);
  close(img);
  return result;
}

/* A detached EROFS mount of image (ro,nosuid,nodev). kind: "file" or "loop". */
static int erofs_mount_fd(const char *image, const char **kind) {
  const char *step = "";
  int fs = erofs_context(image, &step);
  *kind = "file";
  if (fs == -ENOTBLK) {
    char dev[64];
    const char *lstep = "";
    int lfd = loop_attach(image, dev, sizeof dev, &lstep);
    if (lfd < 0) {
      char msg[256];
      snprintf(msg, sizeof msg, "Block device required: no file-backed EROFS here; loop fallback: %s: %s", lstep, strerrorname_np(-lfd) ? strerrorname_np(-lfd) : "?");
      fail_msg(HX_NOLOOP, "fsconfig(create)", image, "ENOTBLK", msg);
    }
    fs = erofs_context(dev, &step);
    close(lfd); /* the superblock holds the device; autoclear frees it with the last mount */
    *kind = "loop";
    if (fs < 0) {
      char what[4200];
      snprintf(what, sizeof what, "%s (on %s)", image, dev);
      fail(0, step, what, -fs);
    }
  } else if (fs < 0) {
    fail(0, step, image, -fs);
  }
  int m = (int)syscall(SYS_fsmount, fs, H_FSMOUNT_CLOEXEC, H_ATTR_RDONLY | H_ATTR_NOSUID | H_ATTR_NODEV);
  if (m < 0) fail(0, "fsmount", image, errno);
  close(fs);
  return m;
}

static int dir_mount_fd(const char *dir) {
  int m = (int)syscall(SYS_open_tree, AT_FDCWD, dir, H_OPEN_TREE_CLONE | O_CLOEXEC | H_AT_RECURSIVE);
  if (m < 0) fail(0, "open_tree", dir, errno);
  if (set_attr(m, H_ATTR_RDONLY | H_ATTR_NOSUID | H_ATTR_NODEV, -1) != 0) fail(0, "mount_setattr(ro,nosuid,nodev)", dir, errno);
  return m;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

#define MOUNT_USAGE "mount --target DIR --upper DIR --work DIR [--idmap BASE:SIZE] [--owner UID:GID --mkdir PATH...] LAYER..."

/* --mkdir PATH...: made inside the mounted root (as mkdirs does), saving a helper start per create. */
static void mkdirs_in(const char *target, const char *owner, const char **dirs, int ndirs) {
  if (ndirs == 0) return;
  if (!owner) usage(MOUNT_USAGE);
  char u[32], *g;
  snprintf(u, sizeof u, "%s", owner);
  if (!(g = strchr(u, ':'))) usage(MOUNT_USAGE);
  *g++ = 0;
  uid_t uid = (uid_t)parse_ulong(u, 0xfffffffeUL, "UID");
  gid_t gid = (gid_t)parse_ulong(g, 0xfffffffeUL, "GID");
  int rootfd = open_dir(target);
  for (int i = 0; i < ndirs; i++) mkdirs_one(rootfd, dirs[i], uid, gid);
  close(rootfd);
}

int cmd_mount(int argc, char **argv) {
  const char *target = NULL, *upper = NULL, *work = NULL, *idmap = NULL, *owner = NULL;
  const char **layers = calloc((size_t)argc + 1, sizeof *layers), **dirs = calloc((size_t)argc + 1, sizeof *dirs);
  int nlayers = 0, ndirs = 0;
  for (int i = 0; i < argc; i++) {
    const char *dummy = NULL;
    int is_dir = strcmp(argv[i], "--mkdir") == 0;
    const char **slot = strcmp(argv[i], "--target") == 0 ? &target : strcmp(argv[i], "--upper") == 0 ? &upper
      : strcmp(argv[i], "--work") == 0 ? &work : strcmp(argv[i], "--idmap") == 0 ? &idmap
      : strcmp(argv[i], "--owner") == 0 ? &owner : is_dir ? &dummy : NULL;
    if (slot) {
      if (i + 1 >= argc) usage(MOUNT_USAGE);
      *slot = argv[++i];
      if (is_dir) dirs[ndirs++] = dummy;
    } else {
      layers[nlayers++] = argv[i];
    }
  }
  if (!target || !upper || !work || nlayers == 0) usage(MOUNT_USAGE);
  struct statfs sf;
  if (is_mount_point(target) && statfs(target, &sf) == 0 && sf.f_type == OVERLAY_MAGIC) {
    mkdirs_in(target, owner, dirs, ndirs);
    return 0;
  }
  mkdir_p(target, 0755);
  mkdir_p(upper, 0755);
  mkdir_p(work, 0700);
  int userns = -1;
  if (idmap) {
    unsigned long base, size;
    char extra;
    if (sscanf(idmap, "%lu:%lu%c", &base, &size, &extra) != 2 || size == 0 || base + size > 0xffffffffUL) usage("--idmap BASE:SIZE");
    userns = make_userns(base, size);
  }
  size_t cap = 64 + (size_t)nlayers * 24 + strlen(upper) + strlen(work);
  char *data = malloc(cap), *p = data;
  p += sprintf(p, "lowerdir=");
  for (int i = nlayers - 1; i >= 0; i--) { /* overlay lists the top layer first */
    const char *kind;
    int m = ends_with(layers[i], ".erofs") ? erofs_mount_fd(layers[i], &kind) : dir_mount_fd(layers[i]);
    if (userns >= 0 && set_attr(m, H_ATTR_IDMAP, userns) != 0) fail(0, "mount_setattr(idmap)", layers[i], errno);
    p += sprintf(p, "%s/proc/self/fd/%d", i == nlayers - 1 ? "" : ":", m);
  }
  if (strlen(data) + strlen(upper) + strlen(work) + 32 > 4000) fail_msg(HX_UNSUPPORTED, "mount(overlay)", target, "E2BIG", "too many layers for one mount option page");
  sprintf(p, ",upperdir=%s,workdir=%s", upper, work);
  if (mount("berth", target, "overlay", 0, data) != 0) fail(0, "mount(overlay)", target, errno);
  mkdirs_in(target, owner, dirs, ndirs);
  return 0;
}

int cmd_umount(int argc, char **argv) {
  if (argc != 1) usage("umount DIR");
  const char *target = argv[0];
  for (int i = 0; i < 64 && is_mount_point(target); i++) {
    if (umount2(target, UMOUNT_NOFOLLOW) == 0) continue;
    int e = errno;
    if (e == EINVAL) break; /* not a mount point after all */
    if (umount2(target, UMOUNT_NOFOLLOW | MNT_DETACH) != 0) fail(0, "umount2", target, e);
  }
  return 0;
}

int cmd_mount_erofs(int argc, char **argv) {
  if (argc != 2) usage("mount-erofs IMAGE DIR");
  const char *kind;
  int m = erofs_mount_fd(argv[0], &kind);
  if (syscall(SYS_move_mount, m, "", AT_FDCWD, argv[1], H_MOVE_MOUNT_F_EMPTY_PATH) != 0) fail(0, "move_mount", argv[1], errno);
  return 0;
}

int cmd_probe_erofs(int argc, char **argv) {
  if (argc != 1) usage("probe-erofs IMAGE");
  const char *kind;
  int m = erofs_mount_fd(argv[0], &kind);
  close(m);
  printf("%s\n", kind);
  return 0;
}
