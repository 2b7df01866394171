/*
 * Docker's meaning of -u USER[:GROUP]: names are looked up in the container's own
 * /etc/passwd and /etc/group (parsed here: no NSS, no tools needed in the image), read
 * with a size bound and only when they are regular files inside the container's root; a
 * numeric UID without a passwd entry runs with GID 0 (and an unusable passwd file, such as
 * a FIFO, counts as no entry for numeric ids; for names it is an error); supplementary groups are the user's
 * groups from /etc/group; HOME comes from passwd when unset.
 *
 *   setuser USER[:GROUP] -- CMD [ARG...]   (argv[0] "setuser": bound into containers as
 *                                           /run/host/berth/setuser, runs under the init)
 */
#include "helper.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_id(const char *s, unsigned long *out) {
  if (!*s || strlen(s) > 10) return 0;
  for (const char *p = s; *p; p++) if (*p < '0' || *p > '9') return 0;
  unsigned long v = strtoul(s, NULL, 10);
  if (v > 0xfffffffeUL) return 0;
  *out = v;
  return 1;
}

/* Splits one line of buf (from *pos) into up to n colon fields; 0 at the end of buf. */
static int next_line(char *buf, size_t len, size_t *pos, char **f, int n) {
  if (*pos >= len) return 0;
  char *line = buf + *pos;
  char *nl = memchr(line, '\n', len - *pos);
  size_t llen = nl ? (size_t)(nl - line) : len - *pos;
  line[llen] = 0;
  *pos += llen + 1;
  int i = 0;
  char *p = line;
  for (; i < n; i++) {
    f[i] = p;
    char *c = strchr(p, ':');
    if (!c) { i++; break; }
    *c = 0;
    p = c + 1;
  }
  for (; i < n; i++) f[i] = "";
  return 1;
}

void resolve_user(int rootfd, const char *spec_in, struct ids *out) {
  char spec[256];
  if (strlen(spec_in) >= sizeof spec) fail_msg(HX_USAGE, "user", spec_in, "EINVAL", "too long");
  strcpy(spec, spec_in);
  char *group = strchr(spec, ':');
  if (group) *group++ = 0;
  if (!*spec) fail_msg(HX_USAGE, "user", spec_in, "EINVAL", "empty user name");
  char *pw, *gr;
  size_t pwlen, grlen;
  unsigned long num;
  int numeric = parse_id(spec, &num);
  /* Names need the files; numeric ids only use them for HOME and groups, so an unusable
   * (FIFO, device, huge) file then counts as absent instead of blocking root's exec. */
  unsigned long gnum;
  int gnumeric = !group || !*group || parse_id(group, &gnum);
  read_in_root(rootfd, "/etc/passwd", MAX_ID_FILE, &pw, &pwlen, numeric ? READ_UNUSABLE_OK : READ_MISSING_OK);
  read_in_root(rootfd, "/etc/group", MAX_ID_FILE, &gr, &grlen, gnumeric ? READ_UNUSABLE_OK : READ_MISSING_OK);
  char *f[7];
  size_t pos = 0;
  int found = 0;
  char name[256] = "";
  memset(out, 0, sizeof *out);
  strcpy(out->home, "/");
  while (pw && next_line(pw, pwlen, &pos, f, 7)) {
    unsigned long u, g;
    if (strcmp(numeric ? f[2] : f[0], spec) != 0) continue;
    if (!parse_id(f[2], &u) || !parse_id(f[3], &g)) fail_msg(HX_REFUSED, "parse", "/etc/passwd", "EINVAL", "bad uid or gid field");
    out->uid = (uid_t)u;
    out->gid = (gid_t)g;
    snprintf(name, sizeof name, "%s", f[0]);
    if (f[5][0]) snprintf(out->home, sizeof out->home, "%s", f[5]);
    found = 1;
    break;
  }
  if (!found) {
    if (!numeric) fail_msg(HX_NOTFOUND, "user", spec, "ENOENT", "no such user in the container's /etc/passwd");
    out->uid = (uid_t)num;
    out->gid = 0;
  }
  if (group && *group) {
    if (parse_id(group, &num)) {
      out->gid = (gid_t)num;
    } else {
      int gfound = 0;
      char *copy = gr ? strndup(gr, grlen) : NULL;
      pos = 0;
      while (copy && next_line(copy, grlen, &pos, f, 4)) {
        unsigned long g;
        if (strcmp(f[0], group) != 0) continue;
        if (!parse_id(f[2], &g)) fail_msg(HX_REFUSED, "parse", "/etc/group", "EINVAL", "bad gid field");
        out->gid = (gid_t)g;
        gfound = 1;
        break;
      }
      free(copy);
      if (!gfound) fail_msg(HX_NOTFOUND, "group", group, "ENOENT", "no such group in the container's /etc/group");
    }
  }
  out->groups[out->ngroups++] = out->gid;
  if (name[0] && !(group && *group)) {
    pos = 0;
    while (gr && out->ngroups < MAX_GROUPS && next_line(gr, grlen, &pos, f, 4)) {
      unsigned long g;
      if (!parse_id(f[2], &g)) continue;
      for (char *save = NULL, *m = strtok_r(f[3], ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        if (strcmp(m, name) == 0) {
          if ((gid_t)g != out->gid) out->groups[out->ngroups++] = (gid_t)g;
          break;
        }
      }
    }
  }
  free(pw);
  free(gr);
}

void apply_user(const struct ids *ids) {
  if (setgroups((size_t)ids->ngroups, ids->groups) != 0) fail(0, "setgroups", NULL, errno);
  if (setresgid(ids->gid, ids->gid, ids->gid) != 0) fail(0, "setresgid", NULL, errno);
  if (setresuid(ids->uid, ids->uid, ids->uid) != 0) fail(0, "setresuid", NULL, errno);
  if (!getenv("HOME")) setenv("HOME", ids->home, 1);
}

int cmd_setuser(int argc, char **argv) {
  g_fixed_status = 126; /* Docker: the command could not be started */
  if (argc < 3 || strcmp(argv[1], "--") != 0) usage("setuser USER[:GROUP] -- CMD [ARG...]");
  int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) fail(126, "open", "/", errno);
  struct ids ids;
  resolve_user(rootfd, argv[0], &ids);
  close(rootfd);
  apply_user(&ids);
  execvp(argv[2], argv + 2);
  int e = errno;
  g_fixed_status = e == ENOENT ? 127 : 126;
  fail(0, "execvp", argv[2], e);
}
