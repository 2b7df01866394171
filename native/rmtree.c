/*
 * berth-helper rmtree PATH...: removes directory trees that hold container content (a
 * machine's upper dir, written by the container's own processes), as `rm -rf
 * --one-file-system` would, but never through a path the content controls.
 *
 * Every step is relative to a directory fd the walk itself opened with O_NOFOLLOW, so a
 * symlink put where a directory was is unlinked, never followed, and nothing outside the
 * tree is read or removed. Only the current directory is held open (any depth, no fd
 * limit): going back up opens ".." and checks that it is the very directory (device and
 * inode) the walk came from, so a directory moved during the walk stops it with an error
 * instead of removing elsewhere. A directory on another device (a mount inside the tree)
 * is refused, not emptied. A directory is re-read from its start after each child is
 * removed; what is already gone is not seen again.
 *
 * A missing PATH is not an error (rm -f). PATH itself is resolved as given: berth passes
 * its own paths (/var/lib/machines/.berth-NAME, the unit's drop-in dir), never content.
 */
#include "helper.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct level {
  dev_t dev;
  ino_t ino;
  char *name; /* this directory's name in its parent (the root's: PATH's last component) */
};

struct walk {
  const char *root; /* PATH as given */
  struct level *levels;
  size_t depth, cap;
};

/* PATH/child/…/name for error lines (truncated past 4 KiB). */
static const char *where(const struct walk *w, const char *name) {
  static char buf[4096];
  size_t n = (size_t)snprintf(buf, sizeof buf, "%s", w->root);
  for (size_t i = 1; i <= w->depth && n < sizeof buf; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "/%s", w->levels[i].name);
  if (name && n < sizeof buf) snprintf(buf + n, sizeof buf - n, "/%s", name);
  return buf;
}

static void push(struct walk *w, const struct stat *st, const char *name) {
  if (w->depth + 1 >= w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 64;
    struct level *l = realloc(w->levels, cap * sizeof *l);
    if (!l) fail(0, "rmtree", w->root, ENOMEM);
    w->levels = l;
    w->cap = cap;
  }
  char *copy = strdup(name);
  if (!copy) fail(0, "rmtree", w->root, ENOMEM);
  w->depth++;
  w->levels[w->depth] = (struct level){ .dev = st->st_dev, .ino = st->st_ino, .name = copy };
}

/*
 * Removes every entry of the directory fd. Returns the name of a non-empty child
 * directory to descend into (malloc'd), or NULL when fd is empty.
 */
static char *empty_or_next(struct walk *w, int fd) {
  int dfd = dup(fd);
  if (dfd < 0) fail(0, "dup", where(w, NULL), errno);
  DIR *d = fdopendir(dfd);
  if (!d) fail(0, "fdopendir", where(w, NULL), errno);
  rewinddir(d); /* the dup shares fd's offset, left at the end by the last pass */
  char *sub = NULL;
  struct dirent *e;
  for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
    const char *n = e->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    if (e->d_type != DT_DIR) {
      if (unlinkat(fd, n, 0) == 0 || errno == ENOENT) continue;
      if (errno != EISDIR) fail(0, "unlink", where(w, n), errno);
    }
    if (unlinkat(fd, n, AT_REMOVEDIR) == 0 || errno == ENOENT) continue;
    if (errno == ENOTEMPTY || errno == EEXIST) {
      sub = strdup(n);
      if (!sub) fail(0, "rmtree", where(w, n), ENOMEM);
      break;
    }
    /* a non-directory after all (DT_DIR replaced meanwhile): unlink it */
    if (errno == ENOTDIR && (unlinkat(fd, n, 0) == 0 || errno == ENOENT)) continue;
    fail(0, "rmdir", where(w, n), errno);
  }
  if (!sub && errno != 0) fail(0, "readdir", where(w, NULL), errno);
  closedir(d);
  return sub;
}

static void rmtree_one(const char *path) {
  if (path[0] != '/') fail_msg(HX_USAGE, "rmtree", path, "EINVAL", "not an absolute path");
  char parent[4096];
  if (snprintf(parent, sizeof parent, "%s", path) >= (int)sizeof parent) fail_msg(HX_USAGE, "rmtree", path, "ENAMETOOLONG", "path too long");
  size_t len = strlen(parent);
  while (len > 1 && parent[len - 1] == '/') parent[--len] = 0;
  char *slash = strrchr(parent, '/');
  char name[256];
  if (snprintf(name, sizeof name, "%s", slash + 1) >= (int)sizeof name) fail_msg(HX_USAGE, "rmtree", path, "ENAMETOOLONG", "name too long");
  if (name[0] == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) fail_msg(HX_USAGE, "rmtree", path, "EINVAL", "not a removable path");
  slash[slash == parent ? 1 : 0] = 0; /* "/name": the parent is "/" */

  int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) {
    if (errno == ENOENT) return;
    fail(0, "open", parent, errno);
  }
  int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOTDIR || e == ELOOP) {
      if (unlinkat(pfd, name, 0) != 0 && errno != ENOENT) fail(0, "unlink", path, errno);
      e = ENOENT;
    }
    close(pfd);
    if (e == ENOENT) return;
    fail(0, "open", path, e);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) fail(0, "fstat", path, errno);
  struct walk w = { .root = path, .levels = malloc(64 * sizeof(struct level)), .depth = 0, .cap = 64 };
  if (!w.levels || !(w.levels[0].name = strdup(name))) fail(0, "rmtree", path, ENOMEM);
  w.levels[0].dev = st.st_dev; /* depth 0: the root */
  w.levels[0].ino = st.st_ino;
  const dev_t dev = st.st_dev;

  for (;;) {
    char *sub = empty_or_next(&w, fd);
    if (sub) {
      int cfd = openat(fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0) {
        /* gone, or no longer a directory: the next pass unlinks or skips it */
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
          free(sub);
          continue;
        }
        fail(0, "open", where(&w, sub), errno);
      }
      struct stat cs;
      if (fstat(cfd, &cs) != 0) fail(0, "fstat", where(&w, sub), errno);
      if (cs.st_dev != dev) fail_msg(HX_BUSY, "rmtree", where(&w, sub), "EXDEV", "another file system is mounted there; unmount it first");
      push(&w, &cs, sub);
      free(sub);
      close(fd);
      fd = cfd;
      continue;
    }
    if (w.depth == 0) break;
    /* fd is empty: back to its parent, which must be the directory the walk came from */
    int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (up < 0) fail(0, "open", where(&w, ".."), errno);
    struct stat ps;
    if (fstat(up, &ps) != 0) fail(0, "fstat", where(&w, ".."), errno);
    const struct level *pl = &w.levels[w.depth - 1];
    if (ps.st_dev != pl->dev || ps.st_ino != pl->ino) fail_msg(HX_REFUSED, "rmtree", where(&w, NULL), "ESTALE", "the directory was moved during the removal; nothing outside the tree was touched");
    close(fd);
    fd = up;
    char *done = w.levels[w.depth].name;
    w.depth--;
    /* ENOTEMPTY: refilled meanwhile, the next pass descends again; ENOTDIR: moved away and
     * replaced, the next pass finds it under its new name or unlinks what replaced it */
    if (unlinkat(fd, done, AT_REMOVEDIR) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST && errno != ENOTDIR) fail(0, "rmdir", where(&w, done), errno);
    free(done);
  }
  close(fd);
  if (unlinkat(pfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) fail(0, "rmdir", path, errno);
  close(pfd);
  free(w.levels[0].name);
  free(w.levels);
}

int cmd_rmtree(int argc, char **argv) {
  if (argc < 1) usage("rmtree PATH...");
  for (int i = 0; i < argc; i++) rmtree_one(argv[i]);
  return 0;
}
