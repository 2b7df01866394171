/*
 * berth-helper: the one native helper berth uses for every privileged syscall.
 * Shared declarations of the multi-call binary (see berth-helper.c for the commands).
 *
 * Error contract (parsed by src/native/errors.ts): every failure is ONE line
 *   berth-helper: STEP PATH: ERRNO_NAME (strerror)
 * on the error fd (stderr, or --errfd N for exec) and a distinct exit status per class.
 */
#ifndef BERTH_HELPER_H
#define BERTH_HELPER_H
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/types.h>

/* Exit statuses by failure class; keep in sync with src/native/errors.ts. */
enum {
  HX_FAIL = 1,        /* anything else (EIO, EINVAL, ...) */
  HX_USAGE = 2,       /* bad arguments */
  HX_NOTFOUND = 3,    /* ENOENT, ENOTDIR, ESRCH */
  HX_PERM = 4,        /* EPERM, EACCES, EROFS */
  HX_UNSUPPORTED = 5, /* the kernel cannot: ENOSYS, EOPNOTSUPP, ENODEV, ENOTBLK */
  HX_NOLOOP = 6,      /* EROFS: no file-backed mount and no loop device */
  HX_REFUSED = 7,     /* container content refused: escape, not a regular file, too big */
  HX_NOSPACE = 8,     /* ENOSPC, EDQUOT */
  HX_EXISTS = 9,      /* EEXIST */
  HX_BUSY = 10,       /* EBUSY */
  HX_CORRUPT = 11,    /* erofs-write: the layer is not a valid tar */
  HX_EXEC_SETUP = 125 /* exec: could not set up the process (details on the error fd) */
};

#define MAX_GROUPS 64
#define MAX_ID_FILE (4u << 20) /* /etc/passwd, /etc/group: 4 MiB is plenty */

extern int g_errfd;
/* When set, every failure exits with this status (setuser: 126, exec: 125). */
extern int g_fixed_status;

int status_for_errno(int e);
_Noreturn void fail(int status, const char *step, const char *path, int err);
_Noreturn void fail_msg(int status, const char *step, const char *path, const char *name, const char *msg);
_Noreturn void usage(const char *text);
void report(const char *step, const char *path, const char *name, const char *msg);

/* root.c: resolution inside a root directory, never through host paths. */
int open_dir(const char *path);
int open_in_root(int rootfd, const char *path, int flags, unsigned long long resolve);
/* Bounded read of a regular file inside rootfd: 0 with *out (NULL when absent and
 * lenient allows), or dies with a clear line. READ_STRICT: anything but a regular file
 * within max fails; READ_MISSING_OK: a missing file reads as absent; READ_UNUSABLE_OK:
 * also a FIFO, device, directory, escaping link or oversized file reads as absent. */
enum { READ_STRICT = 0, READ_MISSING_OK = 1, READ_UNUSABLE_OK = 2 };
int read_in_root(int rootfd, const char *path, size_t max, char **out, size_t *len, int lenient);
int cmd_mkdirs(int argc, char **argv);
/* mkdir -p of path inside rootfd, each new directory owned by uid:gid (mkdirs, mount --mkdir) */
void mkdirs_one(int rootfd, const char *path, uid_t uid, gid_t gid);
unsigned long parse_ulong(const char *s, unsigned long max, const char *what);
int cmd_read(int argc, char **argv);

/* mount.c */
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_mount_erofs(int argc, char **argv);
int cmd_probe_erofs(int argc, char **argv);

/* user.c: Docker's meaning of -u USER[:GROUP], from the container's own files. */
struct ids {
  uid_t uid;
  gid_t gid;
  int ngroups;
  gid_t groups[MAX_GROUPS];
  char home[1024];
};
void resolve_user(int rootfd, const char *spec, struct ids *out);
void apply_user(const struct ids *ids);
int cmd_setuser(int argc, char **argv);

/* exec.c */
int cmd_exec(int argc, char **argv);

/* seccomp.c: nspawn's filter compiled once (seccomp-probe, nspawn-start, seccomp-init). */
#include <linux/filter.h>
struct dumped_filter { struct sock_fprog prog; unsigned long flags; };
int dump_filters(pid_t pid, struct dumped_filter *out, int max, int *count);
int cmd_seccomp_probe(int argc, char **argv);
int cmd_nspawn_start(int argc, char **argv);
int cmd_seccomp_init(int argc, char **argv);
int cmd_seccomp_dump(int argc, char **argv);
/* argv[0] commands inside a container: seccomp-init, seccomp-probe; -1 for any other name */
int seccomp_argv0(const char *self, int argc, char **argv);

/* netns.c */
int cmd_netns_exec(int argc, char **argv);

/* privrun.c */
int cmd_private_tmpfs(int argc, char **argv);

/* rmtree.c: rm -rf of container content, never through it */
int cmd_rmtree(int argc, char **argv);

/* erofs.c: a layer tar (stdin) into an EROFS image, confined by seccomp */
int cmd_erofs_write(int argc, char **argv);

/* berth-helper.c: small shared pieces */
void mkdir_p(const char *path, mode_t mode);
int write_all(int fd, const void *p, size_t n);

/* syscalls glibc 2.36 wraps only in conflicting headers */
int sys_openat2(int dirfd, const char *path, int flags, unsigned long long resolve);
#endif
