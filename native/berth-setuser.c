/*
 * berth-setuser USER[:GROUP] -- CMD [ARG...]
 *
 * Runs CMD as USER (and GROUP) inside a container, with Docker's meaning of `-u`:
 * names are looked up in the container's own /etc/passwd and /etc/group (parsed here, so
 * no NSS and no tools are needed in the image); a numeric UID that has no passwd entry
 * runs with GID 0; supplementary groups are the user's groups from /etc/group; HOME is
 * set from passwd when unset. Built statically so it works in any image, including
 * distroless ones; berth binds it read-only into the container.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GROUPS 64

static void die(const char *what, const char *arg) {
  fprintf(stderr, "berth-setuser: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
  exit(126);
}

static int is_number(const char *s) {
  if (!*s) return 0;
  for (; *s; s++) if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* Finds field 0 == key (or field 2 == key when by_id) in a colon file; fills fields. */
static int lookup(const char *file, const char *key, int by_id, char **fields, int nfields, char *line, size_t len) {
  FILE *f = fopen(file, "re");
  if (!f) return 0;
  while (fgets(line, (int)len, f)) {
    line[strcspn(line, "\n")] = 0;
    int n = 0;
    char *p = line;
    for (; n < nfields; n++) {
      fields[n] = p;
      char *c = strchr(p, ':');
      if (!c) { n++; break; }
      *c = 0;
      p = c + 1;
    }
    for (int i = n; i < nfields; i++) fields[i] = "";
    if (strcmp(fields[by_id ? 2 : 0], key) == 0) { fclose(f); return 1; }
  }
  fclose(f);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[2], "--") != 0) die("usage: berth-setuser USER[:GROUP] -- CMD [ARG...]", NULL);
  char spec[512];
  snprintf(spec, sizeof spec, "%s", argv[1]);
  char *group = strchr(spec, ':');
  if (group) *group++ = 0;
  char line[4096], *pw[7];
  uid_t uid;
  gid_t gid = 0;
  const char *name = NULL, *home = "/";
  if (lookup("/etc/passwd", spec, is_number(spec), pw, 7, line, sizeof line)) {
    uid = (uid_t)strtoul(pw[2], NULL, 10);
    gid = (gid_t)strtoul(pw[3], NULL, 10);
    static char namebuf[256], homebuf[1024];
    snprintf(namebuf, sizeof namebuf, "%s", pw[0]);
    snprintf(homebuf, sizeof homebuf, "%s", pw[5][0] ? pw[5] : "/");
    name = namebuf;
    home = homebuf;
  } else if (is_number(spec)) {
    uid = (uid_t)strtoul(spec, NULL, 10);
  } else {
    die("no such user in the container's /etc/passwd", spec);
  }
  if (group && *group) {
    char gline[4096], *gr[4];
    if (is_number(group)) gid = (gid_t)strtoul(group, NULL, 10);
    else if (lookup("/etc/group", group, 0, gr, 4, gline, sizeof gline)) gid = (gid_t)strtoul(gr[2], NULL, 10);
    else die("no such group in the container's /etc/group", group);
  }
  gid_t groups[MAX_GROUPS];
  int ngroups = 0;
  groups[ngroups++] = gid;
  if (name && !(group && *group)) {
    FILE *f = fopen("/etc/group", "re");
    char gl[4096];
    while (f && fgets(gl, sizeof gl, f) && ngroups < MAX_GROUPS) {
      gl[strcspn(gl, "\n")] = 0;
      char *f0 = gl, *f2, *f3, *c;
      if (!(c = strchr(f0, ':'))) continue;
      if (!(c = strchr(c + 1, ':'))) continue;
      f2 = c + 1;
      if (!(c = strchr(f2, ':'))) continue;
      *c = 0;
      f3 = c + 1;
      for (char *m = strtok(f3, ","); m; m = strtok(NULL, ",")) {
        if (strcmp(m, name) == 0) {
          gid_t g = (gid_t)strtoul(f2, NULL, 10);
          if (g != gid) groups[ngroups++] = g;
          break;
        }
      }
    }
    if (f) fclose(f);
  }
  if (setgroups((size_t)ngroups, groups) != 0) die("setgroups", strerror(errno));
  if (setgid(gid) != 0) die("setgid", strerror(errno));
  if (setuid(uid) != 0) die("setuid", strerror(errno));
  if (!getenv("HOME")) setenv("HOME", home, 1);
  execvp(argv[3], argv + 3);
  fprintf(stderr, "berth-setuser: %s: %s\n", argv[3], strerror(errno));
  return errno == ENOENT ? 127 : 126;
}
