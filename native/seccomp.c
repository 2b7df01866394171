/*
 * nspawn's seccomp filter, compiled once per nspawn build instead of at every start.
 *
 * systemd-nspawn 252 builds its syscall allow list with libseccomp for x86-64, i386 and
 * x32 at every start: ~65 ms of CPU, most of its start-up (bench row
 * start-nspawn-noseccomp). The programs it loads depend only on the nspawn build and its
 * libraries, the kernel, nine capability bits of the payload's set (the optional groups:
 * CAP_SYS_TIME, _MODULE, _RAWIO, IPC_LOCK, SYS_PACCT, _PTRACE, _BOOT, SYSLOG, SYS_TTY_CONFIG)
 * and the SystemCallFilter=/SuppressSync= settings. crun caches its compiled filters for
 * the same reason. Three commands:
 *
 *   seccomp-probe CACHE NSPAWN
 *       Runs NSPAWN once on an empty tmpfs root (its own mount namespace, --settings=no,
 *       default capabilities) with this helper as the payload, copies the payload's filters
 *       with PTRACE_SECCOMP_GET_FILTER, and writes CACHE (atomically, under CACHE.lock):
 *       the identity of every file nspawn had mapped (dev, inode, size, mtime), the kernel
 *       (uname), the payload's CapBnd, then the programs, oldest first.
 *
 *   nspawn-start FILTER [--mount MOUNT-ARG...] -- NSPAWN ARG...
 *       (a machine's ExecStart=, and `run` attached.) With --mount, first mounts the
 *       machine's root as `berth-helper mount MOUNT-ARG...` would (mount.c).
 *       Decides per start. The fast path needs: a valid DIR/nspawn.cache (DIR = FILTER's
 *       directory; root-owned, every file it lists unchanged, the same kernel), NSPAWN the
 *       binary it was made from, only the nspawn options berth itself passes, and the
 *       machine's /etc/systemd/nspawn/NAME.nspawn in the form berth writes: Boot=no,
 *       ProcessTwo=no, one Parameters= starting with SECCOMP_INIT, that helper and FILTER
 *       bound to their targets, no other bind below /run/host, and no [Exec] setting that
 *       changes the filter or the capabilities (Capability=, DropCapability=,
 *       SystemCallFilter=, SuppressSync=, User=, ...: only a known list passes). Then FILTER
 *       becomes a hard link of the cache inode that was checked, and NSPAWN runs with
 *       SYSTEMD_SECCOMP=0. Otherwise FILTER becomes empty and nspawn filters as always (a
 *       stale cache is removed; berth makes a new one at the next create).
 *
 *   seccomp-init NEXT ARG...                       (argv[0]; the machine's PID 1, first)
 *       Reads SECCOMP_FILTER_TARGET. Empty: nspawn filtered, so /proc/self/status must show
 *       seccomp mode 2; anything else is refused. Not empty: the CapBnd bits the filter
 *       depends on must equal the probe's, and every program is loaded, oldest first, with
 *       its flags, before NEXT is exec'd; the filter count must grow by exactly that many.
 *       Every failure is refused (exit 125): never a container without nspawn's filter.
 *
 *   seccomp-dump PID: the filters of a process, for tests and diagnostics (the cache's format).
 */
#include "helper.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define CACHE_MAGIC "berth-seccomp-cache 1\n"
#define SECCOMP_INIT_TARGET "/run/host/berth/seccomp-init"
#define SECCOMP_FILTER_TARGET "/run/host/berth/seccomp.filter"
#define PROBE_TARGET "/run/host/berth/seccomp-probe"
#define MAX_CACHE (4u << 20)
#define MAX_HEADER (256u << 10)
#define MAX_IDENT 256

/* The capabilities nspawn 252's allow list depends on (nspawn-seccomp.c). */
#define DEP_CAPS ((1ULL << CAP_SYS_TIME) | (1ULL << CAP_SYS_MODULE) | (1ULL << CAP_SYS_RAWIO) | \
                  (1ULL << CAP_IPC_LOCK) | (1ULL << CAP_SYS_PACCT) | (1ULL << CAP_SYS_PTRACE) | \
                  (1ULL << CAP_SYS_BOOT) | (1ULL << CAP_SYSLOG) | (1ULL << CAP_SYS_TTY_CONFIG))

extern char **environ;

/* ---- filters of a process (shared with exec.c) ---- */

/*
 * Copies the seccomp filters of pid (stopped briefly). Index 0 is the FIRST installed
 * (kernel/seccomp.c get_nth_filter counts back from the newest by total - index), so
 * loading out[0], out[1], ... in that order rebuilds the same stack. 0 or an errno.
 */
int dump_filters(pid_t pid, struct dumped_filter *out, int max, int *count) {
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) return errno;
  if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) { int e = errno; ptrace(PTRACE_DETACH, pid, 0, 0); return e; }
  int st, reinject = 0;
  for (;;) {
    pid_t w = waitpid(pid, &st, __WALL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    if (WIFEXITED(st) || WIFSIGNALED(st)) return ESRCH;
    if (WIFSTOPPED(st)) {
      if ((st >> 16) == 0 && WSTOPSIG(st) != SIGTRAP) reinject = WSTOPSIG(st); /* a signal-delivery stop */
      break;
    }
  }
  int err = 0, i;
  for (i = 0; i < max; i++) {
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)(long)i, NULL);
    if (n < 0) {
      if (errno == ENOENT && i > 0) break;
      if (errno == EINVAL && i == 0) break; /* no filter at all */
      err = errno;
      break;
    }
    struct sock_filter *insns = calloc((size_t)n, sizeof *insns);
    if (!insns) { err = ENOMEM; break; }
    if (ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)(long)i, insns) != n) { err = errno ? errno : EIO; free(insns); break; }
    out[i].prog.len = (unsigned short)n;
    out[i].prog.filter = insns;
    struct { uint64_t filter_off, flags; } md = { (uint64_t)i, 0 };
    out[i].flags = ptrace(PTRACE_SECCOMP_GET_METADATA, pid, (void *)sizeof md, &md) > 0 ? md.flags : 0;
  }
  if (!err && i == max && ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)(long)i, NULL) >= 0) err = E2BIG;
  ptrace(PTRACE_DETACH, pid, 0, (void *)(long)reinject);
  *count = i;
  return err;
}

/* ---- small I/O ---- */

static char *read_fd(int fd, size_t max, size_t *len, const char *what) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) fail(0, "malloc", what, ENOMEM);
  for (;;) {
    if (n == cap) {
      if (cap >= max) fail_msg(HX_FAIL, "read", what, "EFBIG", "file too big");
      cap = cap * 2 > max ? max : cap * 2;
      char *b = realloc(buf, cap + 1);
      if (!b) fail(0, "realloc", what, ENOMEM);
      buf = b;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(0, "read", what, errno);
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

static uint64_t status_hex(const char *status, const char *key, int *ok) {
  const char *p = strstr(status, key);
  if (!p) { *ok = 0; return 0; }
  return strtoull(p + strlen(key), NULL, 16);
}

static long status_int(const char *status, const char *key) {
  const char *p = strstr(status, key);
  return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static char *proc_status(const char *pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/status", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(0, "open", path, errno);
  size_t n;
  char *s = read_fd(fd, 1 << 20, &n, path);
  close(fd);
  return s;
}

/* The programs as the cache and seccomp-dump store them: per filter u32 flags, u32 length, the instructions. */
static int write_programs(int fd, const struct dumped_filter *f, int n) {
  for (int i = 0; i < n; i++) { /* oldest first */
    uint32_t h[2] = { (uint32_t)(f[i].flags & SECCOMP_FILTER_FLAG_LOG), f[i].prog.len };
    if (write_all(fd, h, sizeof h) || write_all(fd, f[i].prog.filter, f[i].prog.len * sizeof(struct sock_filter))) return -1;
  }
  return 0;
}

/* ---- the cache file ---- */

struct ident { unsigned long long dev, ino, size, sec, nsec; char path[4096]; };

struct cache {
  char kernel[512];
  uint64_t capbnd;
  int nident;
  struct ident *idents;
  int nfilters;
  struct { uint32_t flags; struct sock_fprog prog; } f[64];
};

static void kernel_id(char *out, size_t n) {
  struct utsname u;
  if (uname(&u) != 0) fail(0, "uname", NULL, errno);
  snprintf(out, n, "%s %s %s", u.release, u.machine, u.version);
  for (char *p = out; *p; p++) if (*p == '\n') *p = ' ';
}

/* Parses buf into c; returns NULL or what is wrong. Programs are copied out of buf. */
static const char *parse_cache(char *buf, size_t len, struct cache *c) {
  memset(c, 0, sizeof *c);
  size_t ml = strlen(CACHE_MAGIC);
  if (len < ml || memcmp(buf, CACHE_MAGIC, ml) != 0) return "not a berth seccomp cache";
  char *end = NULL;
  for (size_t i = ml; i + 6 <= len && i < MAX_HEADER; i++) {
    if (memcmp(buf + i, "\ndata\n", 6) == 0 && buf[i - 1] != 0) { end = buf + i; break; }
  }
  if (!end) return "no data line";
  *end = 0; /* header is a C string from here */
  char *data = end + 6;
  size_t dlen = len - (size_t)(data - buf);
  int have_kernel = 0, have_cap = 0, nf = -1;
  c->idents = calloc(MAX_IDENT, sizeof *c->idents);
  if (!c->idents) return "out of memory";
  for (char *save = NULL, *line = strtok_r(buf + ml, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "kernel ", 7) == 0) {
      snprintf(c->kernel, sizeof c->kernel, "%s", line + 7);
      have_kernel = 1;
    } else if (strncmp(line, "capbnd ", 7) == 0) {
      char *e;
      c->capbnd = strtoull(line + 7, &e, 16);
      if (*e) return "bad capbnd";
      have_cap = 1;
    } else if (strncmp(line, "file ", 5) == 0) {
      if (c->nident >= MAX_IDENT) return "too many files";
      struct ident *d = &c->idents[c->nident];
      int off = 0;
      if (sscanf(line + 5, "%llu %llu %llu %llu %llu %n", &d->dev, &d->ino, &d->size, &d->sec, &d->nsec, &off) != 5 || off == 0) return "bad file line";
      const char *p = line + 5 + off;
      if (p[0] != '/' || strlen(p) >= sizeof d->path) return "bad file path";
      snprintf(d->path, sizeof d->path, "%s", p);
      c->nident++;
    } else if (strncmp(line, "filters ", 8) == 0) {
      char *e;
      long v = strtol(line + 8, &e, 10);
      if (*e || v < 1 || v > 64) return "bad filter count";
      nf = (int)v;
    } else if (strncmp(line, "nnp ", 4) == 0) {
      /* informational */
    } else {
      return "unknown header line";
    }
  }
  if (!have_kernel || !have_cap || nf < 0 || c->nident == 0) return "header incomplete";
  size_t off = 0;
  for (int i = 0; i < nf; i++) {
    uint32_t hdr[2];
    if (dlen - off < sizeof hdr) return "truncated";
    memcpy(hdr, data + off, sizeof hdr);
    off += sizeof hdr;
    if (hdr[1] == 0 || hdr[1] > BPF_MAXINSNS) return "bad program length";
    if ((hdr[0] & ~(uint32_t)SECCOMP_FILTER_FLAG_LOG) != 0) return "unknown filter flags";
    size_t bytes = (size_t)hdr[1] * sizeof(struct sock_filter);
    if (dlen - off < bytes) return "truncated";
    c->f[i].flags = hdr[0];
    c->f[i].prog.len = (unsigned short)hdr[1];
    c->f[i].prog.filter = malloc(bytes); /* aligned, whatever the header's length */
    if (!c->f[i].prog.filter) return "out of memory";
    memcpy(c->f[i].prog.filter, data + off, bytes);
    off += bytes;
  }
  if (off != dlen) return "trailing bytes";
  c->nfilters = nf;
  return NULL;
}

static void free_cache(struct cache *c) {
  for (int i = 0; i < 64; i++) free(c->f[i].prog.filter);
  free(c->idents);
  memset(c, 0, sizeof *c);
}

/* Is every file of the cache unchanged, and the kernel the same? NULL or what differs. */
static const char *cache_current(const struct cache *c, const char *nspawn) {
  char k[512];
  kernel_id(k, sizeof k);
  if (strcmp(k, c->kernel) != 0) return "kernel changed";
  for (int i = 0; i < c->nident; i++) {
    const struct ident *d = &c->idents[i];
    struct stat st;
    if (stat(d->path, &st) != 0) return "a file of nspawn's is gone";
    if ((unsigned long long)st.st_dev != d->dev || (unsigned long long)st.st_ino != d->ino ||
        (unsigned long long)st.st_size != d->size || (unsigned long long)st.st_mtim.tv_sec != d->sec ||
        (unsigned long long)st.st_mtim.tv_nsec != d->nsec) return "a file of nspawn's changed";
  }
  struct stat st;
  if (stat(nspawn, &st) != 0) return "nspawn is gone";
  if ((unsigned long long)st.st_dev != c->idents[0].dev || (unsigned long long)st.st_ino != c->idents[0].ino) return "another nspawn binary";
  return NULL;
}

/* Opens a directory path component by component, each root-owned and not writable by others. */
static int open_trusted_dir(const char *path) {
  if (path[0] != '/') return -EINVAL;
  int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *save = NULL, *c = strtok_r(buf, "/", &save);; c = strtok_r(NULL, "/", &save)) {
    struct stat st;
    if (fstat(fd, &st) != 0) { int e = errno; close(fd); return -e; }
    if (st.st_uid != 0 || (st.st_mode & 022) != 0) { close(fd); return -EPERM; }
    if (!c) return fd;
    int n = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    if (n < 0) return -errno;
    fd = n;
  }
}

static void split_dir(const char *path, char *dir, size_t dn, const char **base) {
  const char *s = strrchr(path, '/');
  if (!s || s == path || s[1] == 0) fail_msg(HX_USAGE, "path", path, "EINVAL", "needs a directory and a file name");
  snprintf(dir, dn, "%.*s", (int)(s - path), path);
  *base = s + 1;
}

/* ---- seccomp-probe ---- */

/* The payload's host pid: a descendant of nspawn that is PID 1 of its own namespace. */
static pid_t find_payload(pid_t nspawn) {
  pid_t pids[8192], ppids[8192];
  int n = 0;
  DIR *d = opendir("/proc");
  if (!d) fail(0, "opendir", "/proc", errno);
  for (struct dirent *e; (e = readdir(d)) && n < 8192;) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r <= 0) continue;
    buf[r] = 0;
    char *rp = strrchr(buf, ')');
    if (!rp) continue;
    pids[n] = atoi(e->d_name);
    ppids[n] = (pid_t)strtol(rp + 4, NULL, 10); /* ") S PPID" */
    n++;
  }
  closedir(d);
  for (int i = 0; i < n; i++) {
    pid_t p = pids[i];
    int depth = 0;
    for (pid_t a = ppids[i]; a > 1 && depth < 16; depth++) {
      if (a == nspawn) {
        char spid[16];
        snprintf(spid, sizeof spid, "%d", p);
        char *s = proc_status(spid);
        char *ns = strstr(s, "\nNSpid:");
        char *eol = ns ? strchr(ns + 1, '\n') : NULL;
        int last = -1, fields = 0;
        if (ns && eol) {
          *eol = 0;
          for (char *save = NULL, *t = strtok_r(ns + 7, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) { last = atoi(t); fields++; }
        }
        free(s);
        if (fields >= 2 && last == 1) return p;
        break;
      }
      int j;
      for (j = 0; j < n && pids[j] != a; j++) {}
      if (j == n) break;
      a = ppids[j];
    }
  }
  return -1;
}

/* Files nspawn had mapped (its binary first), each checked against stat() now. */
static int nspawn_idents(pid_t pid, struct ident *out, int max) {
  char path[64], exe[4096];
  snprintf(path, sizeof path, "/proc/%d/exe", pid);
  ssize_t el = readlink(path, exe, sizeof exe - 1);
  if (el <= 0) fail(0, "readlink", path, errno);
  exe[el] = 0;
  snprintf(path, sizeof path, "/proc/%d/maps", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(0, "open", path, errno);
  size_t len;
  char *maps = read_fd(fd, 16u << 20, &len, path);
  close(fd);
  int n = 0;
  snprintf(out[n++].path, sizeof out[0].path, "%s", exe);
  for (char *save = NULL, *line = strtok_r(maps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *p = strchr(line, '/');
    if (!p || strstr(p, " (deleted)")) continue;
    int dup = 0;
    for (int i = 0; i < n; i++) if (strcmp(out[i].path, p) == 0) dup = 1;
    if (dup) continue;
    if (n >= max) fail_msg(HX_FAIL, "seccomp-probe", "nspawn maps", "E2BIG", "too many mapped files");
    snprintf(out[n++].path, sizeof out[0].path, "%s", p);
  }
  free(maps);
  for (int i = 0; i < n; i++) {
    struct stat st;
    if (stat(out[i].path, &st) != 0) fail(0, "stat", out[i].path, errno);
    out[i].dev = st.st_dev;
    out[i].ino = st.st_ino;
    out[i].size = (unsigned long long)st.st_size;
    out[i].sec = (unsigned long long)st.st_mtim.tv_sec;
    out[i].nsec = (unsigned long long)st.st_mtim.tv_nsec;
  }
  return n;
}

static const char *self_exe(void) {
  static char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) fail(0, "readlink", "/proc/self/exe", errno);
  buf[n] = 0;
  return buf;
}

/* 1: valid and current; 0: stale or broken. With caps_too, also 2: valid but this
 * process lacks a capability the probe's payload had (nspawn would drop it, so the
 * programs may differ): nspawn's own filter, and the cache stays. */
static int cache_valid_fd(int fd, const char *nspawn, int caps_too) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) || st.st_size == 0) return 0;
  size_t len;
  char *buf = read_fd(fd, MAX_CACHE, &len, "seccomp cache");
  struct cache c;
  int ok = parse_cache(buf, len, &c) == NULL && cache_current(&c, nspawn) == NULL;
  if (ok && caps_too) {
    char *s = proc_status("self");
    int have = 1;
    uint64_t bnd = status_hex(s, "\nCapBnd:", &have);
    free(s);
    if (!have || (c.capbnd & ~bnd) != 0) ok = 2;
  }
  free_cache(&c);
  free(buf);
  return ok;
}

/*
 * The systemd versions whose nspawn-seccomp.c berth has read: what its programs depend on
 * (DEP_CAPS and the settings nspawn-start refuses) is known for these only. Another
 * version keeps nspawn's own compile until someone reads its source and adds it here.
 */
static const int KNOWN_NSPAWN[] = { 252 };

static int nspawn_version(const char *nspawn) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) fail(0, "pipe2", NULL, errno);
  pid_t c = fork();
  if (c < 0) fail(0, "fork", NULL, errno);
  if (c == 0) {
    dup2(p[1], 1);
    char *const args[] = { (char *)nspawn, "--version", NULL };
    execve(nspawn, args, environ);
    _exit(127);
  }
  close(p[1]);
  char buf[256];
  size_t n = 0;
  for (ssize_t r; n < sizeof buf - 1 && (r = read(p[0], buf + n, sizeof buf - 1 - n)) != 0;) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    n += (size_t)r;
  }
  buf[n] = 0;
  close(p[0]);
  while (waitpid(c, NULL, 0) < 0 && errno == EINTR) {}
  int v = 0;
  return sscanf(buf, "systemd %d", &v) == 1 ? v : -1;
}

int cmd_seccomp_probe(int argc, char **argv) {
  if (argc != 2 || argv[1][0] != '/') usage("berth-helper seccomp-probe CACHE /ABS/PATH/systemd-nspawn");
  const char *cache = argv[0], *nspawn = argv[1], *base;
  int version = nspawn_version(nspawn), known = 0;
  for (size_t i = 0; i < sizeof KNOWN_NSPAWN / sizeof KNOWN_NSPAWN[0]; i++) known |= version == KNOWN_NSPAWN[i];
  if (!known) {
    char msg[160];
    snprintf(msg, sizeof msg, "systemd %d: what its nspawn's filter depends on is known to berth for systemd 252 only", version);
    fail_msg(HX_UNSUPPORTED, "seccomp-probe", nspawn, "ENOTSUP", msg);
  }
  char dir[4096], lockp[4200], tmpp[4200], rootp[4200];
  split_dir(cache, dir, sizeof dir, &base);
  mkdir_p(dir, 0755);
  int dfd = open_trusted_dir(dir);
  if (dfd < 0) fail(0, "open (root-owned, not writable by others)", dir, -dfd);
  snprintf(lockp, sizeof lockp, "%s.lock", base);
  int lfd = openat(dfd, lockp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lfd < 0) fail(0, "open", lockp, errno);
  while (flock(lfd, LOCK_EX) != 0) if (errno != EINTR) fail(0, "flock", lockp, errno);
  /* Another probe may have finished while this one waited. */
  int cfd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (cfd >= 0) {
    int ok = cache_valid_fd(cfd, nspawn, 0);
    close(cfd);
    if (ok) return 0;
  }

  int ready[2], hold[2];
  if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(hold, O_CLOEXEC) != 0) fail(0, "pipe2", NULL, errno);
  snprintf(rootp, sizeof rootp, "%s/probe.XXXXXX", dir);
  if (!mkdtemp(rootp)) fail(0, "mkdtemp", rootp, errno);
  const char *helper = self_exe();
  char bind[8400], dirarg[4300], machine[64];
  snprintf(bind, sizeof bind, "--bind-ro=%s:%s", helper, PROBE_TARGET);
  snprintf(dirarg, sizeof dirarg, "--directory=%s", rootp);
  snprintf(machine, sizeof machine, "--machine=berth-seccomp-probe-%d", (int)getpid());
  pid_t child = fork();
  if (child < 0) { int e = errno; rmdir(rootp); fail(0, "fork", NULL, e); }
  if (child == 0) {
    g_fixed_status = 127;
    if (dup2(hold[0], 0) < 0 || dup2(ready[1], 1) < 0) fail(0, "dup2", NULL, errno);
    if (unshare(CLONE_NEWNS) != 0) fail(0, "unshare(CLONE_NEWNS)", NULL, errno);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(0, "mount(MS_REC|MS_PRIVATE)", "/", errno);
    if (mount("berth-probe", rootp, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) fail(0, "mount(tmpfs)", rootp, errno);
    char usr[4300];
    snprintf(usr, sizeof usr, "%s/usr", rootp);
    if (mkdir(usr, 0755) != 0) fail(0, "mkdir", usr, errno);
    /* as `run` does without systemd: nspawn's propagation dir on a tmpfs of this namespace */
    mkdir_p("/run/systemd/nspawn", 0755);
    if (mount("berth-nspawn", "/run/systemd/nspawn", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) fail(0, "mount(tmpfs)", "/run/systemd/nspawn", errno);
    /* With systemd as PID 1, nspawn gets a transient scope of its own (the caller's cgroup
     * may be anywhere, even outside this cgroup namespace); without it, the caller's. */
    char *args[16] = {
      (char *)nspawn, "--quiet", "--register=no", "--settings=no", "--console=pipe",
      "--link-journal=no", "--resolv-conf=off", "--timezone=off", dirarg, machine, bind,
    };
    int na = 11;
    if (access("/run/systemd/system", F_OK) != 0) args[na++] = "--keep-unit";
    args[na++] = "--";
    args[na++] = PROBE_TARGET;
    args[na] = NULL;
    unsetenv("SYSTEMD_SECCOMP");
    execve(nspawn, args, environ);
    fail(0, "execve", nspawn, errno);
  }
  close(ready[1]);
  close(hold[0]);
  struct pollfd pfd = { .fd = ready[0], .events = POLLIN };
  int pr;
  do pr = poll(&pfd, 1, 20000); while (pr < 0 && errno == EINTR);
  char r6[8] = "";
  ssize_t got = pr > 0 ? read(ready[0], r6, 6) : -1;
  const char *why = NULL;
  int err = 0, nf = 0;
  struct dumped_filter filters[64];
  struct ident *idents = calloc(MAX_IDENT, sizeof *idents);
  int nident = 0;
  uint64_t capbnd = 0;
  long nnp = 0;
  if (!idents) fail(0, "calloc", NULL, ENOMEM);
  if (pr == 0) why = "nspawn did not start the probe within 20 s";
  else if (got != 6 || memcmp(r6, "ready\n", 6) != 0) why = "nspawn exited before the probe ran";
  pid_t payload = why ? -1 : find_payload(child);
  if (!why && payload < 0) why = "the probe's process was not found";
  if (!why) {
    char spid[16];
    snprintf(spid, sizeof spid, "%d", payload);
    char *s = proc_status(spid);
    int ok = 1;
    capbnd = status_hex(s, "\nCapBnd:", &ok);
    nnp = status_int(s, "\nNoNewPrivs:");
    long mode = status_int(s, "\nSeccomp:"), count = status_int(s, "\nSeccomp_filters:");
    free(s);
    if (!ok || mode != 2) why = "nspawn installed no seccomp filter";
    else if ((err = dump_filters(payload, filters, 64, &nf)) != 0) why = "PTRACE_SECCOMP_GET_FILTER failed";
    else if (count >= 0 && count != nf) why = "filter count differs from /proc/PID/status";
    else nident = nspawn_idents(child, idents, MAX_IDENT);
  }
  close(hold[1]); /* the payload exits, and nspawn with it */
  if (why) kill(child, SIGKILL);
  int st = 0;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {}
  close(ready[0]);
  rmdir(rootp);
  if (why) fail_msg(HX_FAIL, "seccomp-probe", nspawn, err ? strerrorname_np(err) : "EIO", why);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg(HX_FAIL, "seccomp-probe", nspawn, "EIO", "nspawn failed after the probe");

  char kid[512];
  kernel_id(kid, sizeof kid);
  snprintf(tmpp, sizeof tmpp, "%s.tmp.%d", base, (int)getpid());
  int out = openat(dfd, tmpp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (out < 0) fail(0, "open", tmpp, errno);
  size_t cap = MAX_HEADER, n = 0;
  char *hdr = malloc(cap);
  if (!hdr) fail(0, "malloc", NULL, ENOMEM);
  n += (size_t)snprintf(hdr + n, cap - n, "%skernel %s\ncapbnd %016llx\nnnp %ld\n", CACHE_MAGIC, kid, (unsigned long long)capbnd, nnp);
  for (int i = 0; i < nident && n < cap; i++) {
    const struct ident *d = &idents[i];
    if (strchr(d->path, '\n')) fail_msg(HX_FAIL, "seccomp-probe", "nspawn maps", "EINVAL", "newline in a path");
    n += (size_t)snprintf(hdr + n, cap - n, "file %llu %llu %llu %llu %llu %s\n", d->dev, d->ino, d->size, d->sec, d->nsec, d->path);
  }
  n += (size_t)snprintf(hdr + n, cap > n ? cap - n : 0, "filters %d\n", nf);
  if (n >= cap - 16) fail_msg(HX_FAIL, "seccomp-probe", "header", "E2BIG", "too long");
  memcpy(hdr + n, "data\n", 5);
  n += 5;
  int bad = write_all(out, hdr, n) || write_programs(out, filters, nf);
  if (bad || fsync(out) != 0) { int e = errno; unlinkat(dfd, tmpp, 0); fail(0, "write", tmpp, e); }
  close(out);
  if (renameat(dfd, tmpp, dfd, base) != 0) { int e = errno; unlinkat(dfd, tmpp, 0); fail(0, "rename", cache, e); }
  return 0;
}

/* The probe's payload inside nspawn: says it runs, then waits for its stdin to close. */
static int probe_payload(void) {
  if (write_all(1, "ready\n", 6) != 0) return 1;
  char b[64];
  while (read(0, b, sizeof b) > 0) {}
  return 0;
}

/* ---- nspawn-start ---- */

/* nspawn options berth itself passes; anything else takes nspawn's own filter path. */
static int option_ok(const char *a, const char **machine) {
  static const char *const exact[] = { "--quiet", "--keep-unit", "--boot", "-U", "--settings=override", "--settings=yes", "--settings=trusted", NULL };
  static const char *const prefix[] = { "--link-journal=", "--directory=", "--register=", "--property=", "--slice=", "--console=", NULL };
  for (int i = 0; exact[i]; i++) if (strcmp(a, exact[i]) == 0) return 1;
  for (int i = 0; prefix[i]; i++) if (strncmp(a, prefix[i], strlen(prefix[i])) == 0) return 1;
  if (strncmp(a, "--machine=", 10) == 0) { *machine = a + 10; return 1; }
  return 0;
}

static int name_ok(const char *s) {
  if (!*s || strlen(s) > 64 || s[0] == '.') return 0;
  for (; *s; s++) if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.')) return 0;
  return 1;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
  return s;
}

/* Does value name exactly SRC:TARGET (nspawn's escaping: berth writes these paths plainly)? */
static int bind_is(const char *value, const char *src, const char *target) {
  size_t n = strlen(src);
  return strncmp(value, src, n) == 0 && value[n] == ':' && strcmp(value + n + 1, target) == 0;
}

/*
 * Could a mount on path hide seccomp-init or its filter file? True for "/", "/run",
 * "/run/host", "/run/host/berth" and the two files themselves (nspawn mounts custom
 * mounts sorted by destination, parents first, so only these come before or replace
 * berth's binds), and for anything not in plain normal form.
 */
static int shadows_ours(const char *path) {
  if (path[0] != '/') return 0; /* not a path (options) */
  char norm[4096];
  size_t n = 0;
  for (const char *p = path; *p;) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return 1;
    if (n + len + 2 >= sizeof norm) return 1;
    norm[n++] = '/';
    memcpy(norm + n, p, len);
    n += len;
    p += len;
  }
  norm[n] = 0;
  if (n == 0) return 1; /* "/" */
  const char *const ours[] = { SECCOMP_INIT_TARGET, SECCOMP_FILTER_TARGET };
  for (int i = 0; i < 2; i++) {
    if (strncmp(ours[i], norm, n) == 0 && (ours[i][n] == 0 || ours[i][n] == '/')) return 1;
  }
  return 0;
}

/* Does a [Files] value (fields split on ':' not escaped by '\') mount over berth's files? */
static int files_value_shadows(const char *key, const char *val) {
  int bind = strcmp(key, "Bind") == 0 || strcmp(key, "BindReadOnly") == 0;
  char buf[8192], *fields[16];
  int nf = 0;
  size_t o = 0;
  fields[nf++] = buf;
  for (const char *p = val; *p && o + 1 < sizeof buf; p++) {
    if (p[0] == '\\' && p[1]) { buf[o++] = *++p; continue; }
    if (*p == ':' && nf < 16) { buf[o++] = 0; fields[nf++] = buf + o; continue; }
    buf[o++] = *p;
  }
  buf[o] = 0;
  if (bind) {
    /* SRC[:DST[:OPTIONS]]: the destination is DST, or SRC itself ("+" = relative to the root) */
    const char *dst = nf >= 2 ? fields[1] : fields[0] + (fields[0][0] == '+');
    return shadows_ours(dst);
  }
  for (int i = 0; i < nf; i++) if (shadows_ours(fields[i] + (fields[i][0] == '+'))) return 1;
  return 0;
}

/* Is NAME.nspawn in the form berth writes for the fast path? NULL or why not. */
static const char *settings_ok(const char *text, const char *helper, const char *filter) {
  static const char *const exec_keys[] = {
    "Boot", "ProcessTwo", "Parameters", "Environment", "WorkingDirectory", "KillSignal", "PrivateUsers",
    "NotifyReady", "Hostname", "ResolvConf", "Timezone", "LinkJournal", "NoNewPrivileges", NULL,
  };
  char *t = strdup(text);
  if (!t) return "out of memory";
  const char *why = NULL;
  int boot_no = 0, two_no = 0, params = 0, init_bound = 0, filter_bound = 0;
  enum { S_NONE, S_EXEC, S_FILES, S_NETWORK, S_OTHER } sec = S_NONE;
  for (char *save = NULL, *raw = strtok_r(t, "\n", &save); raw && !why; raw = strtok_r(NULL, "\n", &save)) {
    char *line = trim(raw);
    if (!*line || *line == '#' || *line == ';') continue;
    if (line[strlen(line) - 1] == '\\') { why = "a continued line"; break; }
    if (*line == '[') {
      if (strcmp(line, "[Exec]") == 0) sec = S_EXEC;
      else if (strcmp(line, "[Files]") == 0) sec = S_FILES;
      else if (strcmp(line, "[Network]") == 0) sec = S_NETWORK;
      else if (strncmp(line, "[X-", 3) == 0) sec = S_OTHER;
      else why = "an unknown section";
      continue;
    }
    char *eq = strchr(line, '=');
    if (!eq) { why = "a line without ="; break; }
    *eq = 0;
    char *key = trim(line), *val = trim(eq + 1);
    if (sec == S_NONE) why = "a setting outside a section";
    else if (sec == S_EXEC) {
      int known = 0;
      for (int i = 0; exec_keys[i]; i++) if (strcmp(key, exec_keys[i]) == 0) known = 1;
      if (!known) why = "an [Exec] setting that may change the filter or the capabilities";
      else if (strcmp(key, "Boot") == 0) boot_no = strcmp(val, "no") == 0;
      else if (strcmp(key, "ProcessTwo") == 0) two_no = strcmp(val, "no") == 0;
      else if (strcmp(key, "Parameters") == 0) {
        params++;
        const char *q = SECCOMP_INIT_TARGET, *qq = "'" SECCOMP_INIT_TARGET "'";
        int first = (strncmp(val, q, strlen(q)) == 0 && val[strlen(q)] == ' ') || (strncmp(val, qq, strlen(qq)) == 0 && val[strlen(qq)] == ' ');
        if (!first) why = "Parameters= does not start with berth's seccomp-init";
      }
    } else if (sec == S_FILES) {
      if (strcmp(key, "BindReadOnly") == 0 && bind_is(val, helper, SECCOMP_INIT_TARGET)) init_bound++;
      else if (strcmp(key, "BindReadOnly") == 0 && bind_is(val, filter, SECCOMP_FILTER_TARGET)) filter_bound++;
      else if (files_value_shadows(key, val)) why = "another mount over berth's seccomp-init or its filter";
    }
  }
  if (!why && (!boot_no || !two_no)) why = "not Boot=no and ProcessTwo=no";
  if (!why && params != 1) why = "not exactly one Parameters=";
  if (!why && (init_bound != 1 || filter_bound != 1)) why = "seccomp-init or its filter is not bound";
  free(t);
  return why;
}

int cmd_nspawn_start(int argc, char **argv) {
  static const char use[] = "berth-helper nspawn-start FILTER [--mount MOUNT-ARG...] -- /ABS/PATH/systemd-nspawn ARG...";
  if (argc < 3) usage(use);
  /* --mount: berth-helper mount's arguments, up to the "--" (its paths are absolute, so
   * none of them is "--"): the machine's root, mounted in the unit's own start process
   * instead of an ExecStartPre= of its own (systemd 252 spends ~4-6 ms per extra Exec
   * command; ExecStopPost= still unmounts it). */
  int mount_from = 0, sep = 1;
  if (strcmp(argv[1], "--mount") == 0) {
    mount_from = 2;
    for (sep = 2; sep < argc && strcmp(argv[sep], "--") != 0; sep++) {}
  }
  if (sep + 1 >= argc || strcmp(argv[sep], "--") != 0 || argv[sep + 1][0] != '/') usage(use);
  const char *filter = argv[0], *nspawn = argv[sep + 1], *fbase;
  char **cmd = argv + sep + 1;
  char dir[4096];
  split_dir(filter, dir, sizeof dir, &fbase);
  const char *machine = NULL, *why = NULL;
  int boot = 0, override = 0;
  for (int i = 1; cmd[i] && !why; i++) {
    if (!option_ok(cmd[i], &machine)) why = "an nspawn option berth does not pass";
    boot |= strcmp(cmd[i], "--boot") == 0;
    override |= strcmp(cmd[i], "--settings=override") == 0;
  }
  /* only with override does the file's Boot=no beat --boot */
  if (!why && boot && !override) why = "--boot without --settings=override";
  if (!why && (!machine || !name_ok(machine))) why = "no machine name";
  /* All of mount's fds are close-on-exec: nspawn inherits none of them. */
  if (mount_from) {
    argv[sep] = NULL;
    cmd_mount(sep - mount_from, argv + mount_from);
  }
  mkdir_p(dir, 0755);
  int dfd = open_trusted_dir(dir);
  if (dfd < 0) fail(0, "open (root-owned, not writable by others)", dir, -dfd);
  const char *helper = self_exe();
  int cfd = -1;
  if (!why) {
    char path[4200];
    snprintf(path, sizeof path, "/etc/systemd/nspawn/%s.nspawn", machine);
    int sfd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (sfd < 0 || fstat(sfd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) why = "no settings file";
    else {
      size_t len;
      char *text = read_fd(sfd, 1 << 20, &len, path);
      if (memchr(text, 0, len)) why = "a NUL in the settings";
      else why = settings_ok(text, helper, filter);
      free(text);
    }
    if (sfd >= 0) close(sfd);
  }
  if (!why) {
    cfd = openat(dfd, "nspawn.cache", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0) why = "no cache";
    else {
      int v = cache_valid_fd(cfd, nspawn, 1);
      if (v != 1) {
        why = v == 2 ? "a capability of the cache's is not in this process's bounding set" : "stale cache";
        if (v == 0) unlinkat(dfd, "nspawn.cache", 0); /* berth probes again at the next create */
        close(cfd);
        cfd = -1;
      }
    }
  }
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", fbase, (int)getpid());
  unlinkat(dfd, tmp, 0);
  if (cfd >= 0) {
    /* the inode just checked, not whatever the name points to now */
    if (linkat(cfd, "", dfd, tmp, AT_EMPTY_PATH) != 0) fail(0, "linkat", tmp, errno);
    close(cfd);
  } else {
    int e = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (e < 0) fail(0, "open", tmp, errno);
    close(e);
  }
  if (renameat(dfd, tmp, dfd, fbase) != 0) { int e = errno; unlinkat(dfd, tmp, 0); fail(0, "rename", filter, e); }
  /* When FILTER already is a link of that inode (every restart), rename(2) does nothing
   * and leaves the temporary name: remove it (ENOENT after a real rename). */
  unlinkat(dfd, tmp, 0);
  close(dfd);
  if (why) unsetenv("SYSTEMD_SECCOMP");
  else if (setenv("SYSTEMD_SECCOMP", "0", 1) != 0) fail(0, "setenv", NULL, errno);
  if (getenv("BERTH_SECCOMP_DEBUG")) fprintf(stderr, "berth-helper: nspawn-start: %s\n", why ? why : "cached filter");
  /* argv[0] as the stock unit has it ("systemd-nspawn"), so ps and the cgroup tree read the same */
  const char *slash = strrchr(nspawn, '/');
  cmd[0] = (char *)(slash ? slash + 1 : nspawn);
  execv(nspawn, cmd);
  fail(errno == ENOENT ? HX_NOTFOUND : 0, "execv", nspawn, errno);
}

/* ---- seccomp-init ---- */

int cmd_seccomp_init(int argc, char **argv) {
  g_fixed_status = 125;
  if (argc < 1) usage("seccomp-init NEXT [ARG...]");
  char *s = proc_status("self");
  long mode = status_int(s, "\nSeccomp:"), before = status_int(s, "\nSeccomp_filters:");
  int ok = 1;
  uint64_t capbnd = status_hex(s, "\nCapBnd:", &ok);
  free(s);
  if (!ok) fail_msg(0, "seccomp-init", "/proc/self/status", "EINVAL", "no CapBnd");
  int fd = open(SECCOMP_FILTER_TARGET, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail(0, "open", SECCOMP_FILTER_TARGET, errno);
  size_t len;
  char *buf = read_fd(fd, MAX_CACHE, &len, SECCOMP_FILTER_TARGET);
  close(fd);
  if (len == 0) {
    if (mode != 2) fail_msg(0, "seccomp-init", SECCOMP_FILTER_TARGET, "EPERM", "nspawn installed no seccomp filter and none is cached; refusing to run unconfined");
  } else {
    struct cache c;
    const char *why = parse_cache(buf, len, &c);
    if (why) fail_msg(0, "seccomp-init", SECCOMP_FILTER_TARGET, "EINVAL", why);
    if ((capbnd & DEP_CAPS) != (c.capbnd & DEP_CAPS)) fail_msg(0, "seccomp-init", "CapBnd", "EPERM", "capabilities differ from the cached filter's");
    for (int i = 0; i < c.nfilters; i++) {
      if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned long)c.f[i].flags, &c.f[i].prog) != 0) fail(0, "seccomp(SECCOMP_SET_MODE_FILTER)", NULL, errno);
    }
    s = proc_status("self");
    long after = status_int(s, "\nSeccomp_filters:");
    free(s);
    if (after != (before < 0 ? 0 : before) + c.nfilters) fail_msg(0, "seccomp-init", "Seccomp_filters", "EIO", "the filter count did not grow as loaded");
    free_cache(&c);
  }
  free(buf);
  execv(argv[0], argv);
  fail(errno == ENOENT ? HX_NOTFOUND : 0, "execv", argv[0], errno);
}

/* ---- seccomp-dump ---- */

int cmd_seccomp_dump(int argc, char **argv) {
  if (argc != 1) usage("berth-helper seccomp-dump PID");
  char *e;
  long pid = strtol(argv[0], &e, 10);
  if (*e || pid <= 1) usage("berth-helper seccomp-dump PID");
  struct dumped_filter f[64];
  int n = 0, err = dump_filters((pid_t)pid, f, 64, &n);
  if (err) fail(HX_UNSUPPORTED, "ptrace(PTRACE_SECCOMP_GET_FILTER)", argv[0], err);
  if (write_programs(1, f, n) != 0) fail(0, "write", "stdout", errno);
  return 0;
}

int seccomp_argv0(const char *self, int argc, char **argv) {
  if (strcmp(self, "seccomp-init") == 0) return cmd_seccomp_init(argc - 1, argv + 1);
  if (strcmp(self, "seccomp-probe") == 0) return probe_payload();
  return -1;
}
