/*
 * exec --leader PID [--user U[:G]] [--cwd DIR] [--tty] [--errfd N] -- CMD [ARG...]
 *
 * Starts CMD inside a running container, confined the way the container's own processes
 * are (its PID 1, "the leader", is the model):
 *   - everything about the leader is opened first, while it is known to be alive (pidfd):
 *     /proc/PID/status (CapBnd, NoNewPrivs, Seccomp), /proc/PID/cgroup, /proc/PID/ns/..,
 *     its root; its seccomp filters are copied with PTRACE_SEIZE + PTRACE_INTERRUPT +
 *     PTRACE_SECCOMP_GET_FILTER (and detached again). If they cannot be read, exec is
 *     refused rather than run unconfined.
 *   - setns(pid), then fork: the child is in the container's PID namespace. The parent
 *     stays outside, forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2/SIGWINCH that
 *     a process sent it, and exits with the child's status (128+signal when killed).
 *   - the child joins the leader's cgroup in every hierarchy (cgroup.procs opened beneath
 *     the cgroupfs mount with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), enters the user,
 *     cgroup, IPC, UTS, network and mount namespaces, chroots to the leader's root, drops
 *     the bounding set to the leader's CapBnd, closes every inherited fd above 2, and only
 *     then sets its working directory, resolved inside the container (openat2 with
 *     RESOLVE_IN_ROOT from the new root: never a host fd or /proc/PID/root path,
 *     CVE-2024-21626). The user comes from the container's own /etc/passwd and
 *     /etc/group (bounded reads, user.c); no_new_privs and the seccomp filters are set
 *     last, then execve. PR_SET_DUMPABLE is 0 throughout (CVE-2019-5736): the container
 *     cannot ptrace or open /proc/PID/exe of the helper before the execve.
 * A terminal of the caller never reaches the container (TIOCSTI: a process whose controlling
 * terminal is the caller's could push input into the caller's shell). The child always
 * starts a new session. With --tty it gets a new pseudo-terminal as its controlling
 * terminal, and the parent relays it (raw mode on the caller's terminal, window size
 * kept in step). Without --tty, any of fds 0-2 that is a terminal is replaced by a pipe
 * that the parent relays.
 * Set-up failures are one line on the error fd (--errfd, else stderr) and exit 125; a
 * command that cannot be executed exits 127 (not found) or 126, with the line on stderr.
 */
#include "helper.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE 2
#endif

extern char **environ;

struct cg { char hier[128]; char path[2048]; };

struct leader {
  pid_t pid;
  uint64_t capbnd;
  int nnp, seccomp, nfilters;
  struct dumped_filter filters[64];
  struct cg cgroups[32];
  int ncgroups;
  int ns[7];          /* user, cgroup, ipc, uts, net, mnt: entered by the child (user last); pid: by the parent */
  int root;
};

static const char *NS_NAMES[7] = { "user", "cgroup", "ipc", "uts", "net", "mnt", "pid" };
static const int NS_TYPES[7] = { CLONE_NEWUSER, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID };

static char *slurp_at(int dirfd, const char *name, size_t max) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(0, "open /proc/LEADER", name, errno);
  char *buf = malloc(max + 1);
  size_t n = 0;
  ssize_t r;
  while (n < max && (r = read(fd, buf + n, max - n)) > 0) n += (size_t)r;
  close(fd);
  buf[n] = 0;
  return buf;
}

static const char *field(const char *status, const char *key) {
  const char *p = strstr(status, key);
  return p ? p + strlen(key) : NULL;
}

static void read_status(int procfd, struct leader *l) {
  char *s = slurp_at(procfd, "status", 1 << 16);
  const char *v = field(s, "\nCapBnd:");
  if (!v) fail_msg(HX_FAIL, "parse /proc/LEADER/status", "CapBnd", "EINVAL", "field missing");
  l->capbnd = strtoull(v, NULL, 16);
  v = field(s, "\nNoNewPrivs:");
  l->nnp = v ? atoi(v) : 0;
  v = field(s, "\nSeccomp:");
  l->seccomp = v ? atoi(v) : 0;
  v = field(s, "\nSeccomp_filters:");
  l->nfilters = v ? atoi(v) : -1;
  free(s);
}

static void read_cgroups(int procfd, struct leader *l) {
  char *s = slurp_at(procfd, "cgroup", 1 << 16);
  for (char *save = NULL, *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!a || !b || l->ncgroups >= 32) continue;
    struct cg *c = &l->cgroups[l->ncgroups++];
    snprintf(c->hier, sizeof c->hier, "%.*s", (int)(b - a - 1), a + 1);
    snprintf(c->path, sizeof c->path, "%s", b + 1);
  }
  free(s);
}

/* Copies the leader's seccomp filters (index 0 = the first installed). The leader is stopped briefly. */
static void read_filters(struct leader *l) {
  if (l->seccomp == 0) return;
  if (l->seccomp != 2) fail_msg(HX_UNSUPPORTED, "seccomp", "leader", "EINVAL", "strict seccomp mode cannot be copied");
  int i = 0, err = dump_filters(l->pid, l->filters, 64, &i);
  if (err == ESRCH) fail_msg(HX_NOTFOUND, "ptrace", "leader", "ESRCH", "the container stopped");
  if (err == EACCES) fail_msg(HX_UNSUPPORTED, "ptrace(PTRACE_SECCOMP_GET_FILTER)", "leader", "EACCES",
      "cannot read the container's seccomp filter (is berth itself confined by seccomp?); refusing to run unconfined");
  if (err) fail(HX_UNSUPPORTED, "ptrace(PTRACE_SECCOMP_GET_FILTER)", "leader", err);
  if (l->nfilters >= 0 && i != l->nfilters) fail_msg(HX_FAIL, "ptrace(PTRACE_SECCOMP_GET_FILTER)", "leader", "EIO", "filter count differs from /proc/LEADER/status");
  l->nfilters = i;
}

static void unescape(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
      *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
      p += 3;
    } else {
      *o++ = *p;
    }
  }
  *o = 0;
}

/* Does a cgroup mount's super options name every controller of hier ("cpu,cpuacct", "name=systemd")? */
static int hier_matches(const char *hier, const char *superopts) {
  char h[128];
  snprintf(h, sizeof h, "%s", hier);
  for (char *save = NULL, *c = strtok_r(h, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
    char opts[512];
    snprintf(opts, sizeof opts, "%s", superopts);
    int found = 0;
    for (char *s2 = NULL, *o = strtok_r(opts, ",", &s2); o; o = strtok_r(NULL, ",", &s2)) if (strcmp(o, c) == 0) found = 1;
    if (!found) return 0;
  }
  return 1;
}

/* Mount point and root of the cgroupfs for hier ("" = cgroup2), from our mountinfo. */
static int find_cgroup_mount(const char *hier, char *mp, size_t mplen, char *root, size_t rootlen) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) fail(0, "open", "/proc/self/mountinfo", errno);
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    char *sep = strstr(line, " - ");
    if (!sep) continue;
    *sep = 0;
    char fstype[64], source[512], superopts[1024] = "";
    if (sscanf(sep + 3, "%63s %511s %1023s", fstype, source, superopts) < 2) continue;
    char r[2048], m[2048];
    if (sscanf(line, "%*s %*s %*s %2047s %2047s", r, m) != 2) continue;
    int v2 = strcmp(fstype, "cgroup2") == 0, v1 = strcmp(fstype, "cgroup") == 0;
    if (!(hier[0] == 0 ? v2 : v1 && hier_matches(hier, superopts))) continue;
    unescape(r);
    unescape(m);
    snprintf(mp, mplen, "%s", m);
    snprintf(root, rootlen, "%s", r);
    found = 1;
  }
  fclose(f);
  return found;
}

static const char *own_cgroup(const char *self, const char *hier) {
  static char path[2048];
  char key[160];
  snprintf(key, sizeof key, ":%s:", hier);
  for (const char *p = self; (p = strstr(p, key)); p++) {
    const char *ls = p;
    while (ls > self && ls[-1] != '\n') ls--;
    if (strchr(ls, ':') != p) continue; /* key must be the second field */
    const char *v = p + strlen(key), *e = strchrnul(v, '\n');
    snprintf(path, sizeof path, "%.*s", (int)(e - v), v);
    return path;
  }
  return NULL;
}

static void join_cgroups(const struct leader *l) {
  int selffd = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
  char *self = slurp_at(selffd, "cgroup", 1 << 16);
  close(selffd);
  for (int i = 0; i < l->ncgroups; i++) {
    const struct cg *c = &l->cgroups[i];
    const char *mine = own_cgroup(self, c->hier);
    if (mine && strcmp(mine, c->path) == 0) continue; /* already there */
    if (strstr(c->path, "/..") || c->path[0] != '/') fail_msg(HX_PERM, "join cgroup", c->path, "EXDEV", "outside berth's cgroup namespace");
    char mp[2048], root[2048];
    if (!find_cgroup_mount(c->hier, mp, sizeof mp, root, sizeof root)) fail_msg(HX_NOTFOUND, "join cgroup", c->hier[0] ? c->hier : "cgroup2", "ENOENT", "hierarchy not mounted");
    const char *rel = c->path;
    size_t rl = strlen(root);
    if (strcmp(root, "/") != 0) {
      if (strncmp(rel, root, rl) != 0 || (rel[rl] != '/' && rel[rl] != 0)) fail_msg(HX_PERM, "join cgroup", c->path, "EXDEV", "not below the mounted cgroupfs root");
      rel += rl;
    }
    while (*rel == '/') rel++;
    char procs[2200];
    snprintf(procs, sizeof procs, "%s%scgroup.procs", rel, *rel ? "/" : "");
    int mfd = open_dir(mp);
    int fd = sys_openat2(mfd, procs, O_WRONLY | O_CLOEXEC, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
    if (fd < 0) fail(0, "join cgroup: openat2", c->path, errno);
    if (write(fd, "0", 1) != 1) fail(0, "join cgroup: write cgroup.procs", c->path, errno);
    close(fd);
    close(mfd);
  }
  free(self);
}

static int same_ns(int fd, const char *own) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(own, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

static void drop_bounding(uint64_t keep) {
  for (int cap = 0; cap < 64; cap++) {
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break; /* past CAP_LAST_CAP */
    if (!(keep & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) fail(0, "prctl(PR_CAPBSET_DROP)", NULL, errno);
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

static void close_inherited(void) {
  int e = g_errfd;
  if (e > 2) {
    if (e > 3 && syscall(SYS_close_range, 3u, (unsigned)e - 1, 0u) != 0) fail(0, "close_range", NULL, errno);
    if (syscall(SYS_close_range, (unsigned)e + 1, ~0u, 0u) != 0) fail(0, "close_range", NULL, errno);
  } else if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
    fail(0, "close_range", NULL, errno);
  }
}

static _Noreturn void child(struct leader *l, const char *user, const char *cwd, char **cmd) {
  join_cgroups(l);
  /* The user namespace last: a namespace the container's user namespace does not own (a
   * network namespace that berth made with ip netns, owned by the host's) can only be
   * entered while still holding the host's capabilities. */
  for (int k = 1; k <= 6; k++) {
    int i = k % 6; /* cgroup, ipc, uts, net, mnt, then user */
    if (l->ns[i] < 0) continue;
    if (setns(l->ns[i], NS_TYPES[i]) != 0) fail(0, "setns", NS_NAMES[i], errno);
  }
  if (fchdir(l->root) != 0) fail(0, "fchdir", "container root", errno);
  if (chroot(".") != 0) fail(0, "chroot", "container root", errno);
  drop_bounding(l->capbnd);
  close_inherited();
  int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) fail(0, "open", "/", errno);
  int dir = open_in_root(root, cwd, O_PATH | O_DIRECTORY, 0);
  if (dir < 0) fail(0, "working directory", cwd, errno);
  if (fchdir(dir) != 0) fail(0, "fchdir", cwd, errno);
  close(dir);
  struct ids ids;
  resolve_user(root, user ? user : "0", &ids);
  close(root);
  if (l->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(0, "prctl(PR_SET_NO_NEW_PRIVS)", NULL, errno);
  for (int i = 0; i < l->nfilters; i++) { /* in the order the leader got them */
    unsigned long flags = l->filters[i].flags & SECCOMP_FILTER_FLAG_LOG;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &l->filters[i].prog) != 0) fail(0, "seccomp(SECCOMP_SET_MODE_FILTER)", NULL, errno);
  }
  apply_user(&ids);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execvpe(cmd[0], cmd, environ);
  int e = errno;
  g_errfd = 2;
  g_fixed_status = e == ENOENT ? 127 : 126;
  fail(0, "execvp", cmd[0], e);
}

static volatile pid_t g_child = 0;
static volatile sig_atomic_t g_winch = 0;
static int g_tty = 0;

static void forward(int sig, siginfo_t *si, void *ctx) {
  (void)ctx;
  /* With --tty the new terminal tells the child about size changes (copied in relay()). */
  if (sig == SIGWINCH && g_tty) { g_winch = 1; return; }
  /* Only what a process sent (berth forwards the terminal's ^C itself). */
  if (g_child > 0 && si->si_code <= 0) kill(g_child, sig);
}

/* The child's ends of its stdio (-1: keep the fd as it is) and the parent's relay ends. */
struct stdio_plan { int child[3]; int parent[3]; int master; };

static void plan_stdio(struct stdio_plan *p, int tty) {
  for (int fd = 0; fd < 3; fd++) p->child[fd] = p->parent[fd] = -1;
  p->master = -1;
  if (tty) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) fail(0, "posix_openpt", NULL, errno);
    const char *name = ptsname(m);
    int s = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
    if (s < 0) fail(0, "open", name ? name : "pty", errno);
    struct winsize ws;
    if (isatty(0) && ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(m, TIOCSWINSZ, &ws);
    p->master = m;
    for (int fd = 0; fd < 3; fd++) p->child[fd] = s;
    return;
  }
  for (int fd = 0; fd < 3; fd++) {
    if (!isatty(fd)) continue;
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) != 0) fail(0, "pipe2", NULL, errno);
    p->child[fd] = fd == 0 ? pp[0] : pp[1];
    p->parent[fd] = fd == 0 ? pp[1] : pp[0];
  }
}

/* In the child, before anything of the container: its own session and stdio. */
static void child_stdio(const struct stdio_plan *p) {
  if (setsid() < 0) fail(0, "setsid", NULL, errno);
  for (int fd = 0; fd < 3; fd++) {
    if (p->child[fd] >= 0 && dup2(p->child[fd], fd) < 0) fail(0, "dup2", NULL, errno);
  }
  if (p->master >= 0 && ioctl(0, TIOCSCTTY, 0) != 0) fail(0, "ioctl(TIOCSCTTY)", NULL, errno);
}

/*
 * Copies the caller's stdin to the child and the child's output to the caller's stdout
 * and stderr until the child has exited and its output is drained. Returns its wait status.
 */
static int relay(pid_t pid, struct stdio_plan *p) {
  struct termios saved;
  int raw = p->master >= 0 && isatty(0) && tcgetattr(0, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    tcsetattr(0, TCSANOW, &t);
  }
  /* sources and where their bytes go */
  int src[4], dst[4], n = 0;
  if (p->master >= 0) {
    src[n] = 0; dst[n++] = p->master;
    src[n] = p->master; dst[n++] = 1;
  } else {
    if (p->parent[0] >= 0) { src[n] = 0; dst[n++] = p->parent[0]; }
    for (int fd = 1; fd < 3; fd++) if (p->parent[fd] >= 0) { src[n] = p->parent[fd]; dst[n++] = fd; }
  }
  int st = 0, exited = 0;
  char buf[65536];
  for (;;) {
    if (!exited) {
      pid_t w = waitpid(pid, &st, WNOHANG);
      if (w == pid) exited = 1;
    }
    if (g_winch) {
      struct winsize ws;
      g_winch = 0;
      if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(p->master, TIOCSWINSZ, &ws);
    }
    struct pollfd pf[4];
    int live = 0, outputs = 0;
    for (int i = 0; i < n; i++) {
      pf[i].fd = src[i];
      pf[i].events = POLLIN;
      pf[i].revents = 0;
      if (src[i] >= 0) { live++; if (src[i] != 0) outputs++; }
    }
    if (outputs == 0 && exited) break;
    int r = poll(pf, (nfds_t)n, exited ? 0 : 200);
    if (r < 0) { if (errno == EINTR) continue; break; }
    if (r == 0) { if (exited) break; continue; }
    for (int i = 0; i < n; i++) {
      if (src[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = read(src[i], buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0 || write_all(dst[i], buf, (size_t)got) != 0) {
        /* EOF (EIO on a pty master once the child side is closed) or a gone reader */
        if (src[i] == 0 && dst[i] != p->master) close(dst[i]); /* the child's stdin sees EOF */
        src[i] = -1;
      }
    }
    (void)live;
  }
  if (raw) tcsetattr(0, TCSANOW, &saved);
  if (!exited) {
    for (;;) {
      pid_t w = waitpid(pid, &st, 0);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) fail(0, "waitpid", NULL, errno);
    }
  }
  return st;
}

static const int FORWARDED[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

int cmd_exec(int argc, char **argv) {
  g_fixed_status = HX_EXEC_SETUP;
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  const char *leader = NULL, *user = NULL, *cwd = "/";
  int i = 0;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (i + 1 >= argc) usage("exec --leader PID [--user U[:G]] [--cwd DIR] [--tty] [--errfd N] -- CMD [ARG...]");
    if (strcmp(argv[i], "--leader") == 0) leader = argv[++i];
    else if (strcmp(argv[i], "--user") == 0) user = argv[++i];
    else if (strcmp(argv[i], "--cwd") == 0) cwd = argv[++i];
    else if (strcmp(argv[i], "--tty") == 0) g_tty = 1;
    else if (strcmp(argv[i], "--errfd") == 0) {
      int fd = atoi(argv[++i]);
      if (fd > 2 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0) g_errfd = fd;
    } else usage("exec --leader PID [--user U[:G]] [--cwd DIR] [--tty] [--errfd N] -- CMD [ARG...]");
  }
  if (!leader || i + 1 >= argc) usage("exec --leader PID [--user U[:G]] [--cwd DIR] [--tty] [--errfd N] -- CMD [ARG...]");
  char **cmd = argv + i + 1;
  struct leader *l = calloc(1, sizeof *l);
  l->pid = (pid_t)atoi(leader);
  if (l->pid <= 1) usage("--leader PID");
  int pidfd = (int)syscall(SYS_pidfd_open, l->pid, 0);
  if (pidfd < 0) fail(errno == ESRCH ? HX_NOTFOUND : 0, "pidfd_open", leader, errno);
  char proc[32];
  snprintf(proc, sizeof proc, "/proc/%d", (int)l->pid);
  int procfd = open_dir(proc);
  read_status(procfd, l);
  read_cgroups(procfd, l);
  for (int n = 0; n < 7; n++) {
    char name[16];
    snprintf(name, sizeof name, "ns/%s", NS_NAMES[n]);
    l->ns[n] = openat(procfd, name, O_RDONLY | O_CLOEXEC);
    if (l->ns[n] < 0) fail(0, "open /proc/LEADER", name, errno);
  }
  l->root = openat(procfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (l->root < 0) fail(0, "open /proc/LEADER", "root", errno);
  read_filters(l);
  /* Still the same process: everything above belongs to the leader, not to a reused PID. */
  if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) != 0) fail(HX_NOTFOUND, "pidfd_send_signal", leader, errno);
  if (same_ns(l->ns[0], "/proc/self/ns/user")) { close(l->ns[0]); l->ns[0] = -1; } /* --userns=host */
  if (setns(l->ns[6], CLONE_NEWPID) != 0) fail(0, "setns", "pid", errno);
  struct stdio_plan io;
  plan_stdio(&io, g_tty);
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t pid = fork();
  if (pid < 0) fail(0, "fork", NULL, errno);
  if (pid == 0) {
    child_stdio(&io); /* a new session: signals arrive through the parent or the new pty */
    child(l, user, cwd, cmd);
  }
  for (int fd = 0; fd < 3; fd++) if (io.child[fd] >= 0 && (fd == 0 || io.child[fd] != io.child[fd - 1])) close(io.child[fd]);
  g_child = pid;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = forward;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t k = 0; k < sizeof FORWARDED / sizeof FORWARDED[0]; k++) sigaction(FORWARDED[k], &sa, NULL);
  sigprocmask(SIG_SETMASK, &old, NULL);
  int st = relay(pid, &io);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
