/*
 * Paths inside a container's root, resolved by the kernel with openat2(RESOLVE_IN_ROOT)
 * from a directory fd of the root: "/" and ".." stop at the root, absolute symlinks are
 * taken relative to it (as the container sees them), magic links (/proc/PID/root, ...)
 * are refused. No host path string is ever built from container content.
 *
 *   mkdirs ROOT UID GID PATH...   creates missing directories of each PATH inside ROOT,
 *                                 chowning only what it created; a dangling symlink is
 *                                 followed inside ROOT (its target is created there)
 *   read ROOT PATH MAXBYTES       copies a regular file (at most MAXBYTES) to stdout; a FIFO,
 *                                 device, directory or bigger file is refused, never a hang
 */
#include "helper.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/openat2.h>

int open_dir(const char *path) {
  int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(0, "open", path, errno);
  return fd;
}

int open_in_root(int rootfd, const char *path, int flags, unsigned long long resolve) {
  return sys_openat2(rootfd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve);
}

static const char *kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symlink";
  return "not a regular file";
}

int read_in_root(int rootfd, const char *path, size_t max, char **out, size_t *len, int lenient) {
  *out = NULL;
  *len = 0;
  int pfd = open_in_root(rootfd, path, O_PATH, 0);
  if (pfd < 0) {
    if (lenient >= READ_MISSING_OK && (errno == ENOENT || errno == ENOTDIR)) return 0;
    if (lenient >= READ_UNUSABLE_OK && (errno == ELOOP || errno == EXDEV)) return 0;
    fail(0, "openat2", path, errno);
  }
  struct stat st;
  if (fstat(pfd, &st) != 0) fail(0, "fstat", path, errno);
  if (lenient >= READ_UNUSABLE_OK && (!S_ISREG(st.st_mode) || (unsigned long long)st.st_size > max)) {
    close(pfd);
    return 0;
  }
  if (!S_ISREG(st.st_mode)) {
    char msg[96];
    snprintf(msg, sizeof msg, "is %s, not a regular file", kind(st.st_mode));
    fail_msg(HX_REFUSED, "read", path, "EINVAL", msg);
  }
  if ((unsigned long long)st.st_size > max) {
    char msg[96];
    snprintf(msg, sizeof msg, "%lld bytes, more than the limit of %zu", (long long)st.st_size, max);
    fail_msg(HX_REFUSED, "read", path, "EFBIG", msg);
  }
  /* Reopen the very inode for reading: O_PATH never opened a FIFO or device. */
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", pfd);
  int fd = open(self, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) fd = open_in_root(rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0); /* no /proc */
  if (fd < 0) fail(0, "open", path, errno);
  struct stat st2;
  if (fstat(fd, &st2) != 0) fail(0, "fstat", path, errno);
  if (!S_ISREG(st2.st_mode) || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev) {
    fail_msg(HX_REFUSED, "read", path, "EAGAIN", "file changed while it was opened");
  }
  close(pfd);
  char *buf = malloc(max + 1);
  if (!buf) fail(0, "malloc", path, ENOMEM);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, max + 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(0, "read", path, errno);
    if (r == 0) break;
    n += (size_t)r;
    if (n > max) fail_msg(HX_REFUSED, "read", path, "EFBIG", "file grew beyond the limit");
  }
  close(fd);
  buf[n] = 0;
  *out = buf;
  *len = n;
  return 0;
}

unsigned long parse_ulong(const char *s, unsigned long max, const char *what) {
  if (!*s || strlen(s) > 19) fail_msg(HX_USAGE, "argument", what, "EINVAL", "not a number");
  for (const char *p = s; *p; p++) if (*p < '0' || *p > '9') fail_msg(HX_USAGE, "argument", what, "EINVAL", "not a number");
  unsigned long v = strtoul(s, NULL, 10);
  if (v > max) fail_msg(HX_USAGE, "argument", what, "ERANGE", "out of range");
  return v;
}

/*
 * One PATH: every component resolved from the root, each missing one made and chowned.
 * A dangling symlink on the way is followed *inside* the root, as mkdir -p in the container
 * would (runc's MkdirAllInRoot does the same): its target is created instead, at most 40
 * links deep. ".." is refused in PATH itself; inside link targets openat2 clamps it at the root.
 */
void mkdirs_one(int rootfd, const char *path, uid_t uid, gid_t gid) {
  if (path[0] != '/') fail_msg(HX_USAGE, "mkdirs", path, "EINVAL", "path must be absolute");
  char cur[4096];
  if (snprintf(cur, sizeof cur, "%s", path) >= (int)sizeof cur) fail_msg(HX_USAGE, "mkdirs", path, "ENAMETOOLONG", "path too long");
  int links = 0, from_link = 0;
restart:;
  char prefix[4096];
  size_t plen = 0;
  int pfd = dup(rootfd);
  if (pfd < 0) fail(0, "dup", path, errno);
  const char *p = cur;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *end = strchrnul(p, '/');
    size_t clen = (size_t)(end - p);
    char comp[256];
    if (clen >= sizeof comp) fail_msg(HX_USAGE, "mkdirs", path, "ENAMETOOLONG", "component too long");
    memcpy(comp, p, clen);
    comp[clen] = 0;
    p = end;
    if (strcmp(comp, ".") == 0) continue;
    if (strcmp(comp, "..") == 0 && !from_link) fail_msg(HX_USAGE, "mkdirs", path, "EINVAL", "\"..\" is not allowed");
    if (plen + 1 + clen + 1 > sizeof prefix) fail_msg(HX_USAGE, "mkdirs", path, "ENAMETOOLONG", "path too long");
    size_t parent_len = plen;
    prefix[plen++] = '/';
    memcpy(prefix + plen, comp, clen);
    plen += clen;
    prefix[plen] = 0;
    int fd = open_in_root(rootfd, prefix, O_PATH | O_DIRECTORY, 0);
    if (fd < 0) {
      if (errno != ENOENT) fail(0, "openat2", prefix, errno);
      /* Missing here, in the directory the prefix resolved to (inside the root). */
      if (mkdirat(pfd, comp, 0755) != 0) {
        if (errno != EEXIST) fail(0, "mkdirat", prefix, errno);
        char target[4096];
        ssize_t n = readlinkat(pfd, comp, target, sizeof target - 1);
        if (n <= 0) fail_msg(HX_REFUSED, "mkdirat", prefix, "EEXIST", "exists but is not a directory");
        target[n] = 0;
        if (++links > 40) fail_msg(HX_REFUSED, "mkdirs", path, "ELOOP", "too many levels of symbolic links");
        /* Dangling link: go on with its target (absolute: from the root; relative: from
         * the link's directory) followed by the rest of the path. */
        char next[4096];
        int w = target[0] == '/' ? snprintf(next, sizeof next, "%s%s", target, p)
                                 : snprintf(next, sizeof next, "%.*s/%s%s", (int)parent_len, prefix, target, p);
        if (w < 0 || w >= (int)sizeof next) fail_msg(HX_USAGE, "mkdirs", path, "ENAMETOOLONG", "path too long");
        memcpy(cur, next, (size_t)w + 1);
        from_link = 1;
        close(pfd);
        goto restart;
      }
      fd = openat(pfd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) fail(0, "openat", prefix, errno);
      if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) != 0) fail(0, "fchownat", prefix, errno);
    }
    close(pfd);
    pfd = fd;
  }
  close(pfd);
}

int cmd_mkdirs(int argc, char **argv) {
  if (argc < 3) usage("mkdirs ROOT UID GID PATH...");
  int rootfd = open_dir(argv[0]);
  uid_t uid = (uid_t)parse_ulong(argv[1], 0xfffffffeUL, "UID");
  gid_t gid = (gid_t)parse_ulong(argv[2], 0xfffffffeUL, "GID");
  for (int i = 3; i < argc; i++) mkdirs_one(rootfd, argv[i], uid, gid);
  return 0;
}

int cmd_read(int argc, char **argv) {
  if (argc != 3) usage("read ROOT PATH MAXBYTES");
  int rootfd = open_dir(argv[0]);
  size_t max = parse_ulong(argv[2], 64ul << 20, "MAXBYTES");
  char *buf;
  size_t len;
  read_in_root(rootfd, argv[1], max, &buf, &len, 0);
  for (size_t off = 0; off < len;) {
    ssize_t w = write(1, buf + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(0, "write", "stdout", errno);
    off += (size_t)w;
  }
  return 0;
}
