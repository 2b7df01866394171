/*
 * erofs-write: one layer's tar stream (stdin) in, one EROFS image file out, in a single
 * pass, with no extraction and no privilege. The native twin of src/snapshot/erofs/
 * (tar.ts, validate.ts, builder.ts, format.ts): the same parser, the same per-entry policy
 * and the same layout, so that both write the same bytes for the same layer (the tests
 * compare them). Read those files for the why of each rule; the comments here say where
 * C differs.
 *
 *   erofs-write --image PATH --tails PATH --max-bytes N --max-entries N
 *               --xattr-prefix trusted|user [--allow-devices] [--progress]
 *               [--decompress /PATH/TO/igzip|zstd]
 *
 * With --decompress, stdin is the compressed layer: PROG -dcq inflates it in a child and
 * this process reads its output through a pipe, so the tar never passes through berth.
 *
 * The tar is hostile input. Once the image and the tails scratch file are open, a seccomp
 * filter allows only reads, writes, positional I/O on open fds and memory management:
 * whatever a bug in here let the layer do, it could not open, map or run anything else.
 *
 * Output (stdout): with --progress, "p BYTES\n" every 8 MiB of tar read; at the end one
 * line "ok ENTRIES INODES IMAGE_BYTES TAR_BYTES SHA256HEX\n" (the SHA-256 of every byte
 * read: the layer's diff ID). A refused or broken layer is one line on stderr
 *   berth-helper: erofs-write: CODE\tENTRY\tMESSAGE
 * (CODE: HOSTILE_LAYER, CORRUPT, UNSUPPORTED, NO_SPACE, IO; ENTRY and MESSAGE with bytes
 * outside printable ASCII, '\' and TAB written as \xHH) and a status per class.
 */
#include "helper.h"
#include "sha256.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>

#define BLOCK 4096u
#define SLOT 32u
#define COMPACT_SIZE 32u
#define EXTENDED_SIZE 64u
#define DIRENT_SIZE 12u
#define XATTR_IBODY_HEADER 12u
#define NAME_MAX_EROFS 255u
#define MAX_SYMLINK 4095u
#define MAX_META (16u << 20)
#define READ_CHUNK (256u << 10)
#define WRITE_BATCH (4u << 20)
#define TAIL_CHUNK (4u << 20)
#define TAIL_MEMORY (64u << 20)
#define PROGRESS_EVERY (8u << 20)
#define MAX_SAFE 9007199254740991LL

#define S_IFMT_ 0170000u
#define S_IFSOCK_ 0140000u
#define S_IFLNK_ 0120000u
#define S_IFREG_ 0100000u
#define S_IFBLK_ 0060000u
#define S_IFDIR_ 0040000u
#define S_IFCHR_ 0020000u
#define S_IFIFO_ 0010000u

/* ------------------------------------------------------------------ errors */

enum { E_HOSTILE, E_CORRUPT, E_UNSUPPORTED, E_NOSPACE, E_IO, E_DECOMPRESS };
static const char *const CODE_NAME[] = { "HOSTILE_LAYER", "CORRUPT", "UNSUPPORTED", "NO_SPACE", "IO", "DECOMPRESS" };
static const int CODE_STATUS[] = { HX_REFUSED, HX_CORRUPT, HX_UNSUPPORTED, HX_NOSPACE, HX_FAIL, HX_CORRUPT };

/* --decompress: the decompressor child whose output is our stdin (0: none). */
static pid_t g_decomp;
static int decomp_failed(int *status);
_Noreturn static void decomp_die(int status);

/* A byte string (names are bytes, not text: any byte but NUL can be in a member name). */
struct str { const unsigned char *p; size_t n; };
#define S(lit) ((struct str){ (const unsigned char *)(lit), sizeof(lit) - 1 })

struct line { char b[8192]; size_t n; };

static void put_esc(struct line *l, const unsigned char *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n && l->n + 5 < sizeof l->b; i++) {
    unsigned c = p[i];
    if (c < 0x20 || c >= 0x7f || c == '\\') {
      l->b[l->n++] = '\\';
      l->b[l->n++] = 'x';
      l->b[l->n++] = hex[c >> 4];
      l->b[l->n++] = hex[c & 15];
    } else {
      l->b[l->n++] = (char)c;
    }
  }
}

/* A message built from text and byte strings: "%s" a C string, "%S" a struct str *, "%L" a long long. */
static void vformat(struct line *l, const char *fmt, va_list ap) {
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      put_esc(l, (const unsigned char *)f, 1);
      continue;
    }
    f++;
    if (*f == 's') {
      const char *s = va_arg(ap, const char *);
      put_esc(l, (const unsigned char *)s, strlen(s));
    } else if (*f == 'S') {
      const struct str *s = va_arg(ap, const struct str *);
      put_esc(l, s->p, s->n);
    } else if (*f == 'L') {
      char num[32];
      int k = snprintf(num, sizeof num, "%lld", va_arg(ap, long long));
      put_esc(l, (const unsigned char *)num, (size_t)k);
    } else {
      put_esc(l, (const unsigned char *)"%", 1);
    }
  }
}

_Noreturn static void die(int code, const struct str *entry, const char *fmt, ...) {
  struct line l = { .n = 0 };
  int st;
  /* a broken stream also breaks the tar: say what broke first (a hostile layer stays hostile) */
  if (code == E_CORRUPT && g_decomp > 0 && decomp_failed(&st)) decomp_die(st);
  const char *pre = "berth-helper: erofs-write: ";
  memcpy(l.b, pre, strlen(pre));
  l.n = strlen(pre);
  put_esc(&l, (const unsigned char *)CODE_NAME[code], strlen(CODE_NAME[code]));
  l.b[l.n++] = '\t';
  if (entry) put_esc(&l, entry->p, entry->n);
  l.b[l.n++] = '\t';
  va_list ap;
  va_start(ap, fmt);
  vformat(&l, fmt, ap);
  va_end(ap);
  l.b[l.n++] = '\n';
  (void)write_all(2, l.b, l.n);
  _exit(CODE_STATUS[code]);
}

#define corrupt(...) die(E_CORRUPT, NULL, "layer is not a valid tar: " __VA_ARGS__)
#define hostile(name, why, ...) die(E_HOSTILE, (name), "hostile layer: entry \"%S\": " why, (name), ##__VA_ARGS__)

_Noreturn static void io_fail(const char *what, int err) {
  const char *name = strerrorname_np(err) ? strerrorname_np(err) : "EUNKNOWN";
  if (err == ENOSPC || err == EDQUOT) die(E_NOSPACE, NULL, "no space left on device: %s (%s)", what, name);
  die(E_IO, NULL, "%s: %s (%s)", what, name, strerror(err));
}

/* ------------------------------------------------------------------ memory */

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die(E_IO, NULL, "out of memory (%L bytes)", (long long)n);
  return p;
}

static void *xcalloc(size_t n, size_t k) {
  void *p = calloc(n ? n : 1, k ? k : 1);
  if (!p) die(E_IO, NULL, "out of memory");
  return p;
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) die(E_IO, NULL, "out of memory (%L bytes)", (long long)n);
  return q;
}

/* Bump allocator for what lives until exit (names, inodes, table records). */
static unsigned char *arena_p;
static size_t arena_left;

static void *arena(size_t n) {
  n = (n + 7) & ~(size_t)7;
  if (n > arena_left) {
    size_t sz = n > (1u << 20) ? n : (1u << 20);
    arena_p = xmalloc(sz);
    arena_left = sz;
  }
  void *r = arena_p;
  arena_p += n;
  arena_left -= n;
  return r;
}

static struct str arena_str(const unsigned char *p, size_t n) {
  unsigned char *c = arena(n + 1);
  memcpy(c, p, n);
  c[n] = 0;
  return (struct str){ c, n };
}

/* Growable byte buffer. */
struct buf { unsigned char *p; size_t n, cap; };

static void buf_add(struct buf *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    size_t c = b->cap ? b->cap : 256;
    while (c < b->n + n) c *= 2;
    b->p = xrealloc(b->p, c);
    b->cap = c;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

/* ------------------------------------------------------------------ hash table
 * Open addressing over records allocated in the arena; a record's key is bytes (callers
 * prefix a tag or a parent id to keep namespaces apart). Never shrinks, never deletes. */

struct hrec { uint64_t hash; uint64_t val; uint32_t klen; unsigned char key[]; };
struct htab { struct hrec **slots; size_t cap, count; };

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull ^ (n * 0x9e3779b97f4a7c15ull);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

static void ht_grow(struct htab *t) {
  size_t cap = t->cap ? t->cap * 2 : 1024;
  struct hrec **s = xcalloc(cap, sizeof *s);
  for (size_t i = 0; i < t->cap; i++) {
    struct hrec *r = t->slots[i];
    if (!r) continue;
    size_t j = r->hash & (cap - 1);
    while (s[j]) j = (j + 1) & (cap - 1);
    s[j] = r;
  }
  free(t->slots);
  t->slots = s;
  t->cap = cap;
}

/* The record for key; created (val 0) when `create`, else NULL when absent. *isnew tells which. */
static struct hrec *ht_get(struct htab *t, const unsigned char *k, size_t n, int create, int *isnew) {
  if (isnew) *isnew = 0;
  if (t->cap == 0) {
    if (!create) return NULL;
    ht_grow(t);
  }
  uint64_t h = hash_bytes(k, n);
  size_t j = h & (t->cap - 1);
  for (struct hrec *r; (r = t->slots[j]); j = (j + 1) & (t->cap - 1)) {
    if (r->hash == h && r->klen == n && memcmp(r->key, k, n) == 0) return r;
  }
  if (!create) return NULL;
  if ((t->count + 1) * 4 > t->cap * 3) {
    ht_grow(t);
    return ht_get(t, k, n, create, isnew);
  }
  struct hrec *r = arena(sizeof *r + n);
  r->hash = h;
  r->val = 0;
  r->klen = (uint32_t)n;
  memcpy(r->key, k, n);
  t->slots[j] = r;
  t->count++;
  if (isnew) *isnew = 1;
  return r;
}

/* Scratch key: a prefix (tag or id) and bytes. */
static struct buf keybuf;
static const unsigned char *mkkey(uint64_t prefix, const unsigned char *p, size_t n, size_t *len) {
  keybuf.n = 0;
  buf_add(&keybuf, &prefix, 8);
  buf_add(&keybuf, p, n);
  *len = keybuf.n;
  return keybuf.p;
}

/* ------------------------------------------------------------------ image writer
 * Writes are gathered into one pwritev per batch. File data is referenced in the input
 * buffer, not copied (out_write_ref: valid until out_flush, which the read loop calls
 * before it reads over that buffer); everything else is copied into `pend` first. With
 * 256 KiB reads the data is still in cache when it is hashed, parsed and written: one copy
 * in, one copy out (a 4 MiB staging copy made the Debian layer's writer ~40% slower). */

static int g_img = -1;
static uint64_t out_pos = BLOCK; /* block 0: the superblock, written last */
#define MAX_IOV 512
static struct iovec iov[MAX_IOV];
static int niov;
static uint64_t pend_start;
static size_t pend_len;   /* bytes gathered in iov */
static unsigned char *pend;
static size_t pend_used;  /* bytes of pend in use */

static void pwrite_all(int fd, const unsigned char *p, size_t n, uint64_t at) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, (off_t)at);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) io_fail("write the image", errno);
    if (w == 0) io_fail("write the image", EIO);
    p += w;
    n -= (size_t)w;
    at += (uint64_t)w;
  }
}

static void out_flush(void) {
  int i = 0;
  uint64_t at = pend_start;
  while (i < niov) {
    ssize_t w = pwritev(g_img, iov + i, niov - i, (off_t)at);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) io_fail("write the image", errno);
    if (w == 0) io_fail("write the image", EIO);
    at += (uint64_t)w;
    size_t left = (size_t)w;
    while (i < niov && left >= iov[i].iov_len) left -= iov[i++].iov_len;
    if (left) {
      iov[i].iov_base = (unsigned char *)iov[i].iov_base + left;
      iov[i].iov_len -= left;
    }
  }
  niov = 0;
  pend_len = 0;
  pend_used = 0;
}

/* Appends p[0, n) at out_pos; the caller made room (niov < MAX_IOV). */
static void out_add(const unsigned char *p, size_t n) {
  if (pend_len == 0) pend_start = out_pos;
  if (niov > 0 && (const unsigned char *)iov[niov - 1].iov_base + iov[niov - 1].iov_len == p) {
    iov[niov - 1].iov_len += n;
  } else {
    iov[niov].iov_base = (void *)p;
    iov[niov].iov_len = n;
    niov++;
  }
  pend_len += n;
  out_pos += n;
}

/* Zero-copy: p must stay unchanged until the next out_flush. */
static void out_write_ref(const unsigned char *p, size_t n) {
  if (n == 0) return;
  if (niov == MAX_IOV) out_flush();
  out_add(p, n);
}

static void out_write(const unsigned char *p, size_t n) {
  while (n > 0) {
    if (pend_used == WRITE_BATCH || niov == MAX_IOV) out_flush();
    size_t k = WRITE_BATCH - pend_used;
    if (k > n) k = n;
    memcpy(pend + pend_used, p, k);
    out_add(pend + pend_used, k);
    pend_used += k;
    p += k;
    n -= k;
  }
}

/* Advances without writing: a hole in the image file reads as zeros. */
static void out_skip(uint64_t n) {
  if (n == 0) return;
  out_flush();
  out_pos += n;
}

/* ------------------------------------------------------------------ tails
 * Inline tails (< 4 KiB per file) in 4 MiB chunks, the oldest spilled to an unlinked
 * scratch file beyond TAIL_MEMORY: 1,000,000 small files must not all stay in memory. */

static int g_spill = -1;
static unsigned char **tchunks;
static size_t tchunk_count, tchunk_cap, tspilled, tfill = TAIL_CHUNK, tmem;
static unsigned char *tcache;
static size_t tcache_idx = (size_t)-1;

static void tail_spill_one(void) {
  unsigned char *c = tchunks[tspilled];
  pwrite_all(g_spill, c, TAIL_CHUNK, (uint64_t)tspilled * TAIL_CHUNK);
  free(c);
  tchunks[tspilled] = NULL;
  tspilled++;
  tmem -= TAIL_CHUNK;
}

/* Reserves len zeroed bytes; returns their offset, *view points at them. */
static uint64_t tail_reserve(size_t len, unsigned char **view) {
  if (tchunk_count == 0 || tfill + len > TAIL_CHUNK) {
    if (tchunk_count == tchunk_cap) {
      tchunk_cap = tchunk_cap ? tchunk_cap * 2 : 64;
      tchunks = xrealloc(tchunks, tchunk_cap * sizeof *tchunks);
    }
    tchunks[tchunk_count++] = xcalloc(1, TAIL_CHUNK);
    tfill = 0;
    tmem += TAIL_CHUNK;
    while (tmem > TAIL_MEMORY) tail_spill_one();
  }
  size_t idx = tchunk_count - 1;
  uint64_t off = (uint64_t)idx * TAIL_CHUNK + tfill;
  *view = tchunks[idx] + tfill;
  tfill += len;
  return off;
}

static void tail_copy(uint64_t off, size_t len, unsigned char *dst) {
  size_t idx = (size_t)(off / TAIL_CHUNK);
  size_t at = (size_t)(off % TAIL_CHUNK);
  unsigned char *c = tchunks[idx];
  if (!c) {
    if (tcache_idx != idx) {
      if (!tcache) tcache = xmalloc(TAIL_CHUNK);
      size_t got = 0;
      while (got < TAIL_CHUNK) {
        ssize_t r = pread(g_spill, tcache + got, TAIL_CHUNK - got, (off_t)((uint64_t)idx * TAIL_CHUNK + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) io_fail("read the tails scratch file", r < 0 ? errno : EIO);
        got += (size_t)r;
      }
      tcache_idx = idx;
    }
    c = tcache;
  }
  memcpy(dst, c + at, len);
}

/* ------------------------------------------------------------------ policy (validate.ts) */

struct policy { long long max_bytes, max_entries; int allow_devices; int xattr_user; };
static struct policy P;

enum { K_NONE = 0, K_DIR = 1, K_FILE = 2, K_SYMLINK = 3, K_OTHER = 4 };
#define V_KIND 7u
#define V_PARENT 8u
#define V_OPAQUE 16u

static struct htab vtab;    /* 'V' + path -> kind | flags */
static struct htab symtab;  /* 'T' + path -> struct str * (the symlink's target) */
static long long v_entries, v_data_bytes;

static struct hrec *vrec(const unsigned char *p, size_t n, int create) {
  size_t kl;
  const unsigned char *k = mkkey('V', p, n, &kl);
  return ht_get(&vtab, k, kl, create, NULL);
}

static unsigned vflags(const unsigned char *p, size_t n) {
  struct hrec *r = vrec(p, n, 0);
  return r ? (unsigned)r->val : 0;
}

static int has_prefix(struct str s, struct str pre) {
  return s.n >= pre.n && memcmp(s.p, pre.p, pre.n) == 0;
}

static int str_eq(struct str a, struct str b) {
  return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* normalizeEntryPath: "" is the root; NUL and ".." refused. Writes into out. */
static struct str normalize(const struct str *raw, struct buf *out, int for_link, const struct str *entry) {
  if (memchr(raw->p, 0, raw->n)) {
    if (for_link) hostile(entry, "hardlink target \"%S\" contains \"..\"", raw);
    hostile(raw, "NUL byte in name");
  }
  out->n = 0;
  size_t i = 0;
  while (i <= raw->n) {
    size_t j = i;
    while (j < raw->n && raw->p[j] != '/') j++;
    size_t len = j - i;
    const unsigned char *c = raw->p + i;
    if (len == 2 && c[0] == '.' && c[1] == '.') {
      if (for_link) hostile(entry, "hardlink target \"%S\" contains \"..\"", raw);
      hostile(raw, "path contains \"..\"");
    }
    if (len > 0 && !(len == 1 && c[0] == '.')) {
      if (out->n) buf_add(out, "/", 1);
      buf_add(out, c, len);
    }
    i = j + 1;
  }
  buf_add(out, "", 1); /* NUL terminator, not counted */
  out->n--;
  return (struct str){ out->p, out->n };
}

static void check_parents(const struct str *raw, struct str path) {
  for (size_t i = 0; i < path.n; i++) {
    if (path.p[i] != '/') continue;
    unsigned kind = vflags(path.p, i) & V_KIND;
    struct str parent = { path.p, i };
    if (kind == K_SYMLINK) hostile(raw, "parent \"%S\" is a symlink of this layer", &parent);
    if (kind != K_NONE && kind != K_DIR) hostile(raw, "parent \"%S\" is not a directory in this layer", &parent);
  }
}

static void add_parents(struct str path) {
  size_t i = path.n;
  for (;;) {
    while (i > 0 && path.p[i - 1] != '/') i--;
    if (i == 0) break;
    i--; /* path.p[i] == '/': the parent is path[0, i) */
    struct hrec *r = vrec(path.p, i, 1);
    if (r->val & V_PARENT) return;
    r->val |= V_PARENT;
  }
  if (path.n > 0) vrec(path.p, 0, 1)->val |= V_PARENT;
}

static const struct str WH = { (const unsigned char *)".wh.", 4 };
static const struct str WH_META = { (const unsigned char *)".wh..wh.", 8 };
static const struct str WH_OPQ = { (const unsigned char *)".wh..wh..opq", 12 };

/* Entries below an AUFS meta name are dropped (1); below a whiteout name refused. */
static int below_meta(const struct str *raw, struct str path) {
  if (!memmem(path.p, path.n, ".wh.", 4)) return 0;
  size_t i = 0;
  while (i < path.n) {
    size_t j = i;
    while (j < path.n && path.p[j] != '/') j++;
    if (j >= path.n) break; /* the last component */
    struct str comp = { path.p + i, j - i };
    if (has_prefix(comp, WH_META)) return 1;
    if (has_prefix(comp, WH)) {
      struct str upto = { path.p, j };
      hostile(raw, "entry below the whiteout \"%S\"", &upto);
    }
    i = j + 1;
  }
  return 0;
}

static void record(const struct str *raw, struct str path, unsigned kind, const struct str *linkname) {
  size_t kl;
  const unsigned char *k = mkkey('T', path.p, path.n, &kl);
  struct hrec *t = ht_get(&symtab, k, kl, kind == K_SYMLINK, NULL);
  if (t && t->val) {
    const struct str *prev = (const struct str *)(uintptr_t)t->val;
    if (!(kind == K_SYMLINK && str_eq(*linkname, *prev))) {
      hostile(raw, "replaces the symlink \"%S\" of this layer (tar delays symlinks: the result would be ambiguous)", &path);
    }
  }
  if (kind == K_SYMLINK && !t->val) {
    struct str *s = arena(sizeof *s);
    *s = arena_str(linkname->p, linkname->n);
    t->val = (uint64_t)(uintptr_t)s;
  }
  unsigned f = vflags(path.p, path.n);
  if (kind != K_DIR && (f & (V_PARENT | V_OPAQUE))) {
    hostile(raw, "replaces directory \"%S\" that has entries, whiteouts or an opaque marker of this layer below it", &path);
  }
  add_parents(path);
  struct hrec *r = vrec(path.p, path.n, 1);
  r->val = (r->val & ~(uint64_t)V_KIND) | kind;
}

static void check_hardlink(const struct str *raw, const struct str *linkname) {
  if (linkname->n == 0) hostile(raw, "hardlink without target");
  struct buf tb = { 0 };
  struct str target = normalize(linkname, &tb, 1, raw);
  unsigned kind = vflags(target.p, target.n) & V_KIND;
  if (kind == K_NONE) hostile(raw, "hardlink target \"%S\" is not an earlier entry of this layer", linkname);
  if (kind == K_DIR) hostile(raw, "hardlink target \"%S\" is a directory", linkname);
  check_parents(raw, target);
  free(tb.p);
}

enum etype { T_NULL, T_FILE, T_LINK, T_SYMLINK, T_CHR, T_BLK, T_DIR, T_FIFO, T_CONTIG };
static const char *const TYPE_NAME[] = { "unknown", "file", "link", "symlink", "character-device", "block-device", "directory", "fifo", "contiguous-file" };

struct entry {
  struct str name;     /* GNU long names, PAX path and GNU.sparse.name applied */
  enum etype type;
  unsigned mode;
  long long uid, gid, mtime, mtime_nsec;
  long long size;      /* bytes in the archive */
  long long real_size; /* logical size (sparse files) */
  int sparse;
  struct str linkname;
  long long devmajor, devminor;
  /* xattrs in archive order */
  size_t nx;
  struct str *xname;
  struct str *xvalue;
};

/* LayerValidator.check: returns 0 and the normalised path, or 1 for an entry to drop. */
static int validate(const struct entry *e, struct buf *pathbuf, struct str *out) {
  const struct str *raw = &e->name;
  if (++v_entries > P.max_entries) hostile(raw, "more than %L entries (limit)", P.max_entries);
  struct str path = normalize(raw, pathbuf, 0, NULL);
  long long rs = e->sparse ? e->real_size : e->size;
  v_data_bytes += rs;
  if (v_data_bytes > P.max_bytes) hostile(raw, "layer expands beyond %L bytes (limit)", P.max_bytes);
  if (e->type == T_NULL) die(E_UNSUPPORTED, raw, "layer entry \"%S\": unsupported tar entry type (old GNU sparse, volume, multivolume?)", raw);
  if (e->size != 0 && e->type != T_FILE && e->type != T_CONTIG) hostile(raw, "%s entry with data", TYPE_NAME[e->type]);
  if (below_meta(raw, path)) return 1;
  check_parents(raw, path);
  size_t b = path.n;
  while (b > 0 && path.p[b - 1] != '/') b--;
  struct str base = { path.p + b, path.n - b };
  *out = path;
  if (has_prefix(base, WH)) {
    struct str dir = { path.p, b > 0 ? b - 1 : 0 };
    if (str_eq(base, WH_OPQ)) {
      add_parents(path);
      vrec(dir.p, dir.n, 1)->val |= V_OPAQUE;
      return 0;
    }
    if (has_prefix(base, WH_META)) return 0;
    struct str name = { base.p + 4, base.n - 4 };
    if (name.n == 0 || str_eq(name, S(".")) || str_eq(name, S(".."))) hostile(raw, "invalid whiteout name");
    add_parents(path);
    return 0;
  }
  if (path.n == 0 && e->type != T_DIR) hostile(raw, "non-directory entry for the root");
  switch (e->type) {
  case T_DIR:
    if ((vflags(path.p, path.n) & V_KIND) == K_SYMLINK) hostile(raw, "directory over a symlink of this layer");
    record(raw, path, K_DIR, NULL);
    break;
  case T_FILE: case T_CONTIG:
    record(raw, path, K_FILE, NULL);
    break;
  case T_SYMLINK:
    if (e->linkname.n == 0) hostile(raw, "symlink without target");
    record(raw, path, K_SYMLINK, &e->linkname);
    break;
  case T_LINK:
    check_hardlink(raw, &e->linkname);
    record(raw, path, K_FILE, NULL);
    break;
  case T_CHR: case T_BLK: {
    int wh = e->type == T_CHR && !e->devmajor && !e->devminor;
    if (!wh && !P.allow_devices) hostile(raw, "%s not allowed here (rootless)", TYPE_NAME[e->type]);
    record(raw, path, K_OTHER, NULL);
    break;
  }
  case T_FIFO:
    record(raw, path, K_OTHER, NULL);
    break;
  default:
    die(E_UNSUPPORTED, raw, "layer entry \"%S\": unsupported tar entry type", raw);
  }
  *out = path;
  return 0;
}

/* ------------------------------------------------------------------ tar (tar.ts) */

static void on_entry(struct entry *e);
static void on_data(const unsigned char *p, size_t n);
static void on_hole(long long n);
static void on_end(void);

static size_t cstrlen(const unsigned char *b, size_t max) {
  size_t n = 0;
  while (n < max && b[n]) n++;
  return n;
}

/* A numeric field: octal text, or GNU base-256 when the high bit is set. */
static long long parse_number(const unsigned char *b, size_t len, const char *what) {
  if (b[0] & 0x80) {
    int neg = b[0] == 0xff;
    __int128 v = 0;
    for (size_t i = 0; i < len; i++) {
      unsigned byte = i == 0 ? (neg ? 0xffu : (b[0] & 0x7fu)) : b[i];
      v = (v << 8) | byte;
    }
    if (neg) v -= (__int128)1 << (len * 8);
    if (v > MAX_SAFE || v < -MAX_SAFE) corrupt("%s out of range", what);
    return (long long)v;
  }
  size_t i = 0;
  while (i < len && b[i] == ' ') i++;
  unsigned long long v = 0;
  int digits = 0;
  for (; i < len; i++) {
    unsigned c = b[i];
    if (c == 0 || c == ' ') break;
    if (c < '0' || c > '7') corrupt("%s is not an octal number", what);
    v = v * 8 + (c - '0');
    digits++;
  }
  for (; i < len; i++) if (b[i] != 0 && b[i] != ' ') corrupt("%s is not an octal number", what);
  if (digits == 0) return 0;
  if (v > (unsigned long long)MAX_SAFE) corrupt("%s out of range", what);
  return (long long)v;
}

/* The header's byte sum, the checksum field counted as spaces: unsigned (POSIX), or signed
 * (some old tars). Word-wise: two byte lanes per 32-bit half, no lane above 2^16. */
static int checksum_ok(const unsigned char *h) {
  long long stored = parse_number(h + 148, 8, "checksum");
  uint64_t lanes = 0;
  for (int i = 0; i < 512; i += 8) {
    uint64_t w;
    memcpy(&w, h + i, 8);
    if (i == 144) w = (w & 0xffffffffull) | 0x2020202000000000ull; /* bytes 148..151 */
    if (i == 152) w = (w & ~0xffffffffull) | 0x20202020ull;        /* bytes 152..155 */
    lanes += w & 0x00ff00ff00ff00ffull;
    lanes += (w >> 8) & 0x00ff00ff00ff00ffull;
  }
  long long u = 0;
  for (int k = 0; k < 4; k++) u += (long long)((lanes >> (16 * k)) & 0xffff);
  if (stored == u) return 1;
  long long s = 8 * 0x20;
  for (int i = 0; i < 512; i++) {
    if (i >= 148 && i < 156) continue;
    s += (signed char)h[i];
  }
  return stored == s;
}

/* /^[0-9]{1,16}$/ */
static long long decimal(const unsigned char *p, size_t n, const char *what) {
  if (n < 1 || n > 16) goto bad;
  long long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') goto bad;
    v = v * 10 + (p[i] - '0');
  }
  if (v > MAX_SAFE) corrupt("%s out of range", what);
  return v;
bad:;
  struct str s = { p, n > 40 ? 40 : n };
  corrupt("%s \"%S\" is not a number", what, &s);
}

static int all_digits(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) if (p[i] < '0' || p[i] > '9') return 0;
  return 1;
}

/* PAX time: [-]secs[.frac] (floor semantics for negatives). */
static void pax_time(const unsigned char *p, size_t n, long long *sec, long long *nsec) {
  const unsigned char *dot = memchr(p, '.', n);
  size_t d = dot ? (size_t)(dot - p) : n;
  size_t i = 0;
  int neg = n > 0 && p[0] == '-';
  if (neg) i = 1;
  if (d - i < 1 || d - i > 15 || !all_digits(p + i, d - i)) goto bad;
  if (dot && !all_digits(p + d + 1, n - d - 1)) goto bad;
  long long s = 0, ns = 0;
  for (size_t k = i; k < d; k++) s = s * 10 + (p[k] - '0');
  if (dot) {
    size_t fl = n - d - 1;
    for (size_t k = 0; k < 9; k++) ns = ns * 10 + (k < fl ? p[d + 1 + k] - '0' : 0);
  }
  if (neg) {
    s = -s;
    if (ns > 0) {
      s -= 1;
      ns = 1000000000 - ns;
    }
  }
  *sec = s;
  *nsec = ns;
  return;
bad:;
  struct str sh = { p, n > 40 ? 40 : n };
  corrupt("PAX mtime \"%S\"", &sh);
}

struct pax {
  int has_path, has_linkpath, has_size, has_uid, has_gid, has_mtime;
  struct buf path, linkpath;
  long long size, uid, gid, mtime, mtime_nsec;
  struct buf xnames, xvalues; /* concatenated */
  size_t nx;
  size_t *xname_off, *xname_len, *xval_off, *xval_len;
  size_t xcap;
  int has_sname, has_smajor, has_sminor, has_srealsize, has_smap;
  struct buf sname, smajor, sminor;
  long long srealsize;
  long long *smap;
  size_t smap_n, smap_cap;
};

static void pax_clear(struct pax *x) {
  x->has_path = x->has_linkpath = x->has_size = x->has_uid = x->has_gid = x->has_mtime = 0;
  x->nx = 0;
  x->xnames.n = x->xvalues.n = 0;
  x->has_sname = x->has_smajor = x->has_sminor = x->has_srealsize = x->has_smap = 0;
  x->smap_n = 0;
}

static void pax_xattr(struct pax *x, const unsigned char *name, size_t nl, const unsigned char *val, size_t vl) {
  if (x->nx == x->xcap) {
    x->xcap = x->xcap ? x->xcap * 2 : 16;
    x->xname_off = xrealloc(x->xname_off, x->xcap * sizeof(size_t));
    x->xname_len = xrealloc(x->xname_len, x->xcap * sizeof(size_t));
    x->xval_off = xrealloc(x->xval_off, x->xcap * sizeof(size_t));
    x->xval_len = xrealloc(x->xval_len, x->xcap * sizeof(size_t));
  }
  x->xname_off[x->nx] = x->xnames.n;
  x->xname_len[x->nx] = nl;
  buf_add(&x->xnames, name, nl);
  x->xval_off[x->nx] = x->xvalues.n;
  x->xval_len[x->nx] = vl;
  buf_add(&x->xvalues, val, vl);
  x->nx++;
}

static void smap_push(struct pax *x, long long v) {
  if (x->smap_n == x->smap_cap) {
    x->smap_cap = x->smap_cap ? x->smap_cap * 2 : 16;
    x->smap = xrealloc(x->smap, x->smap_cap * sizeof *x->smap);
  }
  x->smap[x->smap_n++] = v;
}

static int hexval(unsigned c) {
  if (c >= '0' && c <= '9') return (int)(c - '0');
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
  return -1;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int utf8_ok(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t k;
    unsigned cp;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { k = 2; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07; }
    else return 0;
    if (i + k >= n) return 0;
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (p[i + j] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + j] & 0x3f);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += k + 1;
  }
  return 1;
}

static int b64val(unsigned c) {
  if (c >= 'A' && c <= 'Z') return (int)(c - 'A');
  if (c >= 'a' && c <= 'z') return (int)(c - 'a' + 26);
  if (c >= '0' && c <= '9') return (int)(c - '0' + 52);
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* LIBARCHIVE.xattr.NAME=BASE64: NAME percent-encoded UTF-8, the value RFC 4648 base64. */
static void pax_libarchive_xattr(struct pax *x, const unsigned char *key, size_t kn, const unsigned char *v, size_t vn) {
  struct buf name = { 0 }, val = { 0 };
  const unsigned char *enc = key + 17;
  size_t en = kn - 17;
  for (size_t i = 0; i < en; i++) {
    unsigned c = enc[i];
    if (c >= 0x80) goto badname;
    if (c == '%') {
      int hi, lo;
      if (i + 2 >= en) goto badname;
      if ((hi = hexval(enc[i + 1])) < 0 || (lo = hexval(enc[i + 2])) < 0) goto badname;
      unsigned char b = (unsigned char)(hi * 16 + lo);
      buf_add(&name, &b, 1);
      i += 2;
    } else {
      buf_add(&name, &enc[i], 1);
    }
  }
  if (!utf8_ok(name.p, name.n)) goto badname;
  size_t pad = 0, n = vn;
  while (n > 0 && v[n - 1] == '=' && pad < 2) { n--; pad++; }
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int d = b64val(v[i]);
    if (d < 0) {
      struct str k = { key, kn > 60 ? 60 : kn };
      corrupt("PAX xattr value of \"%S\" is not base64", &k);
    }
    acc = (acc << 6) | (unsigned)d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      unsigned char b = (unsigned char)(acc >> bits);
      buf_add(&val, &b, 1);
      acc &= (1u << bits) - 1;
    }
  }
  pax_xattr(x, name.p ? name.p : (const unsigned char *)"", name.n, val.p ? val.p : (const unsigned char *)"", val.n);
  free(name.p);
  free(val.p);
  return;
badname:;
  struct str k = { key, kn > 60 ? 60 : kn };
  corrupt("PAX xattr name \"%S\"", &k);
}

static int key_is(const unsigned char *k, size_t n, const char *lit) {
  size_t l = strlen(lit);
  return n == l && memcmp(k, lit, l) == 0;
}

static void set_buf(struct buf *b, const unsigned char *p, size_t n) {
  b->n = 0;
  buf_add(b, p, n);
}

/* PAX records "LEN key=value\n" in b[0, n), values binary-safe; merged into x (later wins). */
static void parse_pax(struct pax *x, const unsigned char *b, size_t n) {
  size_t off = 0;
  struct pax seq = { 0 }; /* GNU 0.0: offset/numbytes records of this header (its smap) */
  while (off < n) {
    if (b[off] == 0) break;
    unsigned long long len = 0;
    size_t sp = off;
    for (; sp < n && sp - off <= 16; sp++) {
      unsigned c = b[sp];
      if (c == ' ') break;
      if (c < '0' || c > '9') corrupt("PAX record length");
      len = len * 10 + (c - '0');
    }
    if (sp == off || sp >= n || b[sp] != ' ') corrupt("PAX record without length");
    if (len < (unsigned long long)(sp - off + 3) || len > n - off || b[off + len - 1] != '\n') corrupt("PAX record length");
    size_t rec_end = off + (size_t)len;
    size_t eq = sp + 1;
    while (eq < rec_end && b[eq] != '=') eq++;
    if (eq >= rec_end) corrupt("PAX record without \"=\"");
    const unsigned char *k = b + sp + 1;
    size_t kn = eq - sp - 1;
    const unsigned char *v = b + eq + 1;
    size_t vn = rec_end - 1 - (eq + 1);
    off = rec_end;
    if (kn >= 13 && memcmp(k, "SCHILY.xattr.", 13) == 0) {
      pax_xattr(x, k + 13, kn - 13, v, vn);
      continue;
    }
    if (kn >= 17 && memcmp(k, "LIBARCHIVE.xattr.", 17) == 0) {
      pax_libarchive_xattr(x, k, kn, v, vn);
      continue;
    }
    if (vn == 0) continue; /* an empty value unsets a global default: nothing to unset */
    if (key_is(k, kn, "path")) { set_buf(&x->path, v, vn); x->has_path = 1; }
    else if (key_is(k, kn, "linkpath")) { set_buf(&x->linkpath, v, vn); x->has_linkpath = 1; }
    else if (key_is(k, kn, "size")) { x->size = decimal(v, vn, "PAX size"); x->has_size = 1; }
    else if (key_is(k, kn, "uid")) { x->uid = decimal(v, vn, "PAX uid"); x->has_uid = 1; }
    else if (key_is(k, kn, "gid")) { x->gid = decimal(v, vn, "PAX gid"); x->has_gid = 1; }
    else if (key_is(k, kn, "mtime")) { pax_time(v, vn, &x->mtime, &x->mtime_nsec); x->has_mtime = 1; }
    else if (key_is(k, kn, "GNU.sparse.name")) { set_buf(&x->sname, v, vn); x->has_sname = 1; }
    else if (key_is(k, kn, "GNU.sparse.major")) { set_buf(&x->smajor, v, vn); x->has_smajor = 1; }
    else if (key_is(k, kn, "GNU.sparse.minor")) { set_buf(&x->sminor, v, vn); x->has_sminor = 1; }
    else if (key_is(k, kn, "GNU.sparse.realsize") || key_is(k, kn, "GNU.sparse.size")) {
      x->srealsize = decimal(v, vn, kn == 19 ? "GNU.sparse.realsize" : "GNU.sparse.size");
      x->has_srealsize = 1;
    } else if (key_is(k, kn, "GNU.sparse.map")) {
      x->smap_n = 0;
      size_t i = 0;
      for (;;) {
        size_t j = i;
        while (j < vn && v[j] != ',') j++;
        smap_push(x, decimal(v + i, j - i, "GNU.sparse.map"));
        if (j >= vn) break;
        i = j + 1;
      }
      x->has_smap = 1;
    } else if (key_is(k, kn, "GNU.sparse.offset") || key_is(k, kn, "GNU.sparse.numbytes")) {
      smap_push(&seq, decimal(v, vn, kn == 17 ? "GNU.sparse.offset" : "GNU.sparse.numbytes"));
      x->smap_n = 0;
      for (size_t i = 0; i < seq.smap_n; i++) smap_push(x, seq.smap[i]);
      x->has_smap = 1;
    }
    /* atime, ctime, uname, gname, comment, charset...: not used */
  }
  free(seq.smap);
}

enum pstate { ST_HEADER, ST_META, ST_DATA, ST_SPARSEMAP, ST_PAD, ST_ZERO, ST_EOF };

static struct {
  enum pstate state;
  unsigned char hdr[512];
  size_t hdr_fill;
  unsigned char meta_kind;
  struct buf meta;
  size_t meta_size;
  struct pax pax;
  int has_pax;
  struct buf long_name, long_link;
  int has_long_name, has_long_link;
  long long remain, pad;
  int is_file;
  int have_segs; /* segs holds this sparse file's map */
  long long *segs;
  size_t nsegs, seg_idx, segs_cap;
  long long seg_left, logical, real_size;
  struct buf map_text;
  long long entries;
  /* the entry being handed out (its strings live in these buffers) */
  struct buf ename, elink;
  struct entry e;
} T = { .state = ST_HEADER };

static void set_segments(const long long *map, size_t n, long long stored, long long real_size) {
  if (n % 2) corrupt("odd sparse map");
  long long end = 0, sum = 0;
  for (size_t i = 0; i < n; i += 2) {
    long long o = map[i], l = map[i + 1];
    if (o < end || o + l > real_size) corrupt("sparse map out of order or beyond the file");
    end = o + l;
    sum += l;
  }
  if (sum != stored) corrupt("sparse map does not match the stored size");
  if (n > T.segs_cap) {
    T.segs_cap = n;
    T.segs = xrealloc(T.segs, n * sizeof *T.segs);
  }
  memcpy(T.segs, map, n * sizeof *map);
  T.nsegs = n;
  T.seg_idx = 0;
  T.seg_left = 0;
  T.have_segs = 1;
}

static void finish_data(void) {
  if (T.have_segs && T.logical < T.real_size) on_hole(T.real_size - T.logical);
  T.have_segs = 0;
  on_end();
  T.state = T.pad > 0 ? ST_PAD : ST_HEADER;
}

static int is_ustar(const unsigned char *h) {
  return memcmp(h + 257, "ustar", 6) == 0; /* "ustar\0": POSIX, with the prefix field */
}

static void on_meta(const unsigned char *b, size_t n) {
  if (T.meta_kind == 'x') {
    if (!T.has_pax) pax_clear(&T.pax);
    parse_pax(&T.pax, b, n);
    T.has_pax = 1;
  } else if (T.meta_kind == 'L') {
    set_buf(&T.long_name, b, cstrlen(b, n));
    T.has_long_name = 1;
  } else if (T.meta_kind == 'K') {
    set_buf(&T.long_link, b, cstrlen(b, n));
    T.has_long_link = 1;
  } /* 'g': ignored */
  T.state = T.pad > 0 ? ST_PAD : ST_HEADER;
}

static enum etype type_of(unsigned char flag) {
  switch (flag) {
  case '0': case 0: return T_FILE;
  case '1': return T_LINK;
  case '2': return T_SYMLINK;
  case '3': return T_CHR;
  case '4': return T_BLK;
  case '5': return T_DIR;
  case '6': return T_FIFO;
  case '7': return T_CONTIG;
  default: return T_NULL;
  }
}

static void on_header(const unsigned char *h) {
  static const unsigned char zeros[512];
  if (memcmp(h, zeros, 512) == 0) {
    if (T.has_pax || T.has_long_name || T.has_long_link) corrupt("extended header without an entry");
    T.state = ST_ZERO;
    return;
  }
  if (!checksum_ok(h)) corrupt("header checksum mismatch at entry %L", T.entries + 1);
  unsigned char flag = h[156];
  long long size = parse_number(h + 124, 12, "size");
  if (size < 0) corrupt("negative size");
  if (flag == 'x' || flag == 'g' || flag == 'L' || flag == 'K') {
    if (size > (long long)MAX_META) die(E_HOSTILE, NULL, "hostile layer: %L-byte extended header (limit %L)", size, (long long)MAX_META);
    T.meta_kind = flag;
    T.meta.n = 0;
    T.meta_size = (size_t)size;
    T.pad = (512 - size % 512) % 512;
    if (size == 0) on_meta(h, 0);
    else T.state = ST_META;
    return;
  }
  struct buf *nm = &T.ename, *lk = &T.elink;
  nm->n = 0;
  lk->n = 0;
  if (is_ustar(h)) {
    size_t pl = cstrlen(h + 345, 155);
    if (pl) {
      buf_add(nm, h + 345, pl);
      buf_add(nm, "/", 1);
    }
  }
  buf_add(nm, h, cstrlen(h, 100));
  if (flag == '1' || flag == '2') buf_add(lk, h + 157, cstrlen(h + 157, 100));
  if (T.has_long_name) set_buf(nm, T.long_name.p, T.long_name.n);
  if (T.has_long_link) set_buf(lk, T.long_link.p, T.long_link.n);
  int has_pax = T.has_pax;
  T.has_pax = T.has_long_name = T.has_long_link = 0;
  enum etype type = type_of(flag);
  if (type == T_FILE && flag == 0 && nm->n > 0 && nm->p[nm->n - 1] == '/') type = T_DIR; /* V7 directories */
  struct entry *e = &T.e;
  e->mtime = parse_number(h + 136, 12, "mtime");
  e->mtime_nsec = 0;
  e->uid = parse_number(h + 108, 8, "uid");
  e->gid = parse_number(h + 116, 8, "gid");
  e->mode = (unsigned)(parse_number(h + 100, 8, "mode") & 07777);
  e->devmajor = type == T_CHR || type == T_BLK ? parse_number(h + 329, 8, "devmajor") : 0;
  e->devminor = type == T_CHR || type == T_BLK ? parse_number(h + 337, 8, "devminor") : 0;
  e->nx = 0;
  e->sparse = 0;
  T.have_segs = 0;
  T.real_size = 0;
  long long real_size = size;
  if (has_pax) {
    struct pax *x = &T.pax;
    if (x->has_path) set_buf(nm, x->path.p, x->path.n);
    if (x->has_linkpath) set_buf(lk, x->linkpath.p, x->linkpath.n);
    if (x->has_size) size = x->size;
    if (x->has_uid) e->uid = x->uid;
    if (x->has_gid) e->gid = x->gid;
    if (x->has_mtime) { e->mtime = x->mtime; e->mtime_nsec = x->mtime_nsec; }
    e->nx = x->nx;
    real_size = size;
    if (x->has_smajor || x->has_smap || x->has_srealsize) {
      if (type != T_FILE) corrupt("sparse %s entry", TYPE_NAME[type]);
      e->sparse = 1;
      if (x->has_sname) set_buf(nm, x->sname.p, x->sname.n);
      if (!x->has_srealsize) corrupt("sparse file without its real size");
      real_size = x->srealsize;
      T.real_size = real_size;
      int v10 = x->has_smajor && str_eq((struct str){ x->smajor.p, x->smajor.n }, S("1")) && x->has_sminor && str_eq((struct str){ x->sminor.p, x->sminor.n }, S("0"));
      int major1 = x->has_smajor && str_eq((struct str){ x->smajor.p, x->smajor.n }, S("1"));
      if (v10) {
        T.map_text.n = 0;
      } else if (x->has_smap && !major1) {
        set_segments(x->smap, x->smap_n, size, real_size);
      } else {
        struct str n = { nm->p, nm->n };
        struct str ma = x->has_smajor ? (struct str){ x->smajor.p, x->smajor.n } : S("?");
        struct str mi = x->has_sminor ? (struct str){ x->sminor.p, x->sminor.n } : S("?");
        die(E_UNSUPPORTED, &n, "layer entry \"%S\": unsupported sparse format %S.%S", &n, &ma, &mi);
      }
    }
  }
  if (e->nx > 0) {
    /* views into the PAX buffers, which stay untouched until the next extended header */
    static struct str *xn, *xv;
    static size_t xcap;
    if (e->nx > xcap) {
      xcap = e->nx;
      xn = xrealloc(xn, xcap * sizeof *xn);
      xv = xrealloc(xv, xcap * sizeof *xv);
    }
    for (size_t i = 0; i < e->nx; i++) {
      xn[i] = (struct str){ T.pax.xnames.p + T.pax.xname_off[i], T.pax.xname_len[i] };
      xv[i] = (struct str){ T.pax.xvalues.p ? T.pax.xvalues.p + T.pax.xval_off[i] : (const unsigned char *)"", T.pax.xval_len[i] };
    }
    e->xname = xn;
    e->xvalue = xv;
  }
  T.entries++;
  buf_add(nm, "", 1);
  nm->n--;
  buf_add(lk, "", 1);
  lk->n--;
  e->name = (struct str){ nm->p, nm->n };
  e->linkname = (struct str){ lk->p ? lk->p : (const unsigned char *)"", lk->n };
  e->type = type;
  e->size = size;
  e->real_size = real_size;
  on_entry(e); /* validates (dies) before any byte of the entry is used */
  T.is_file = type == T_FILE || type == T_CONTIG;
  T.remain = size;
  T.pad = (512 - size % 512) % 512;
  T.logical = 0;
  if (e->sparse && !T.have_segs) {
    if (size == 0) corrupt("sparse file without a map");
    T.state = ST_SPARSEMAP;
  } else {
    T.state = ST_DATA;
    if (size == 0) finish_data();
  }
}

static void on_map_bytes(const unsigned char *p, size_t n) {
  buf_add(&T.map_text, p, n);
  if (T.map_text.n > MAX_META) die(E_HOSTILE, NULL, "hostile layer: sparse map too large");
  if (T.map_text.n % 512) return;
  /* lines: a decimal count, then offset/size pairs, one per line */
  const unsigned char *t = T.map_text.p;
  size_t tn = T.map_text.n;
  size_t nlines = 1;
  for (size_t i = 0; i < tn; i++) if (t[i] == '\n') nlines++;
  if (nlines < 2) {
    if (T.remain == 0) corrupt("truncated sparse map");
    return;
  }
  const unsigned char *nl = memchr(t, '\n', tn);
  long long count = decimal(t, (size_t)(nl - t), "sparse map count");
  if (count > (long long)nlines || 2 * count + 2 > (long long)nlines) {
    if (T.remain == 0) corrupt("truncated sparse map");
    return;
  }
  long long *map = xmalloc((size_t)(2 * count + 1) * sizeof *map);
  const unsigned char *q = nl + 1;
  for (long long i = 0; i < 2 * count; i++) {
    const unsigned char *e = memchr(q, '\n', (size_t)(t + tn - q));
    size_t len = e ? (size_t)(e - q) : (size_t)(t + tn - q);
    map[i] = decimal(q, len, "sparse map");
    q += len + 1;
  }
  set_segments(map, (size_t)(2 * count), T.remain, T.real_size);
  free(map);
  T.map_text.n = 0;
  T.state = ST_DATA;
  if (T.remain == 0) finish_data();
}

static void next_segment(void) {
  while (T.seg_idx < T.nsegs) {
    long long o = T.segs[T.seg_idx], l = T.segs[T.seg_idx + 1];
    T.seg_idx += 2;
    if (o > T.logical) on_hole(o - T.logical);
    T.logical = o;
    if (l > 0) {
      T.seg_left = l;
      return;
    }
  }
  corrupt("sparse data beyond its map");
}

static void on_file_bytes(const unsigned char *p, size_t n) {
  if (!T.have_segs) {
    on_data(p, n);
    T.logical += (long long)n;
    return;
  }
  size_t i = 0;
  while (i < n) {
    if (T.seg_left <= 0) next_segment();
    size_t take = n - i;
    if ((long long)take > T.seg_left) take = (size_t)T.seg_left;
    on_data(p + i, take);
    i += take;
    T.seg_left -= (long long)take;
    T.logical += (long long)take;
  }
}

static void tar_push(const unsigned char *p, size_t n) {
  size_t off = 0;
  while (off < n) {
    switch (T.state) {
    case ST_HEADER: {
      size_t take = 512 - T.hdr_fill;
      if (take > n - off) take = n - off;
      if (take == 512) {
        on_header(p + off);
        off += 512;
      } else {
        memcpy(T.hdr + T.hdr_fill, p + off, take);
        T.hdr_fill += take;
        off += take;
        if (T.hdr_fill == 512) {
          T.hdr_fill = 0;
          on_header(T.hdr);
        }
      }
      break;
    }
    case ST_META: {
      size_t take = T.meta_size - T.meta.n;
      if (take > n - off) take = n - off;
      buf_add(&T.meta, p + off, take);
      off += take;
      if (T.meta.n == T.meta_size) on_meta(T.meta.p, T.meta.n);
      break;
    }
    case ST_DATA: case ST_SPARSEMAP: {
      size_t take = n - off;
      if ((long long)take > T.remain) take = (size_t)T.remain;
      if (T.state == ST_SPARSEMAP) {
        size_t lim = 512 - T.map_text.n % 512;
        if (take > lim) take = lim;
      }
      const unsigned char *part = p + off;
      off += take;
      T.remain -= (long long)take;
      if (T.state == ST_SPARSEMAP) on_map_bytes(part, take);
      else if (T.is_file) on_file_bytes(part, take);
      if (T.remain == 0 && T.state == ST_DATA) finish_data();
      break;
    }
    case ST_PAD: {
      size_t take = n - off;
      if ((long long)take > T.pad) take = (size_t)T.pad;
      off += take;
      T.pad -= (long long)take;
      if (T.pad == 0) T.state = ST_HEADER;
      break;
    }
    case ST_ZERO: {
      size_t take = 512 - T.hdr_fill;
      if (take > n - off) take = n - off;
      for (size_t i = off; i < off + take; i++) if (p[i]) corrupt("garbage after an end-of-archive block");
      T.hdr_fill += take;
      off += take;
      if (T.hdr_fill == 512) {
        T.hdr_fill = 0;
        T.state = ST_EOF;
      }
      break;
    }
    case ST_EOF:
      return; /* trailing padding: hashed and counted by the caller */
    }
  }
}

static void tar_end(void) {
  if (T.state == ST_EOF || T.state == ST_ZERO) return;
  if (T.state == ST_HEADER && T.hdr_fill == 0 && !T.has_pax && !T.has_long_name && !T.has_long_link) return;
  corrupt("truncated archive");
}

/* ------------------------------------------------------------------ tree (builder.ts) */

struct dirinfo;
struct inode {
  uint32_t mode, nlink, mtime_nsec, nxattrs;
  uint64_t uid, gid;
  int64_t mtime;
  uint64_t size;
  uint64_t iu;   /* first data block, or the encoded rdev of a device */
  int64_t tail;  /* offset in the tail store; -1: none (FLAT_PLAIN) */
  uint32_t *xattrs;
  struct dirinfo *dir;
  uint64_t nid;
};

struct child { struct str name; struct inode *node; };

struct dirinfo {
  uint32_t id;
  struct child *kids;
  size_t nkids, kcap;
  struct str *wh;
  size_t nwh, whcap;
  int opaque;
  struct inode *parent;
  struct child *sorted; /* layout: names with "." and "..", sorted bytewise */
  size_t nsorted;
  uint32_t *starts;
  size_t nstarts;
  uint32_t tail_used; /* inline last block's bytes; 0: none */
};

static struct inode g_root;
static struct inode **leaves;
static size_t nleaves, leaves_cap;
static uint32_t dir_ids;
static struct htab kidtab; /* ('C', dir id) + name -> index + 1 in kids */
static struct htab whtab;  /* ('W', dir id) + name */

/* interned xattrs: (index, suffix, value) -> id */
static struct htab xtab;
static uint8_t *x_index;
static struct str *x_suffix, *x_value;
static size_t nx_ids, x_cap;

/* the file receiving data */
static struct inode *cur;
static uint64_t cur_pos, cur_plain;
static unsigned char *cur_tail;
static size_t cur_tail_len;
static int cur_skip;

static struct inode *new_inode(void) {
  struct inode *n = arena(sizeof *n);
  memset(n, 0, sizeof *n);
  n->tail = -1;
  return n;
}

static struct dirinfo *new_dir(void) {
  struct dirinfo *d = arena(sizeof *d);
  memset(d, 0, sizeof *d);
  d->id = dir_ids++;
  return d;
}

static struct hrec *kid_rec(struct dirinfo *d, const unsigned char *p, size_t n, int create, int *isnew) {
  size_t kl;
  const unsigned char *k = mkkey(((uint64_t)'C' << 32) | d->id, p, n, &kl);
  return ht_get(&kidtab, k, kl, create, isnew);
}

static struct inode *kid_get(struct dirinfo *d, const unsigned char *p, size_t n) {
  struct hrec *r = kid_rec(d, p, n, 0, NULL);
  return r ? d->kids[r->val - 1].node : NULL;
}

/* Map.set: a new name goes last, an existing one keeps its place. */
static void kid_set(struct dirinfo *d, const unsigned char *p, size_t n, struct inode *node) {
  int isnew;
  struct hrec *r = kid_rec(d, p, n, 1, &isnew);
  if (!isnew) {
    d->kids[r->val - 1].node = node;
    return;
  }
  if (d->nkids == d->kcap) {
    d->kcap = d->kcap ? d->kcap * 2 : 8;
    d->kids = xrealloc(d->kids, d->kcap * sizeof *d->kids);
  }
  d->kids[d->nkids] = (struct child){ { r->key + 8, n }, node };
  d->nkids++;
  r->val = d->nkids;
}

static void add_whiteout(struct dirinfo *d, const unsigned char *p, size_t n) {
  int isnew;
  size_t kl;
  const unsigned char *k = mkkey(((uint64_t)'W' << 32) | d->id, p, n, &kl);
  struct hrec *r = ht_get(&whtab, k, kl, 1, &isnew);
  if (!isnew) return;
  if (d->nwh == d->whcap) {
    d->whcap = d->whcap ? d->whcap * 2 : 4;
    d->wh = xrealloc(d->wh, d->whcap * sizeof *d->wh);
  }
  d->wh[d->nwh++] = (struct str){ r->key + 8, n };
}

static uint32_t intern(unsigned index, struct str suffix, struct str value) {
  struct buf k = { 0 };
  uint32_t sl = (uint32_t)suffix.n;
  unsigned char ix = (unsigned char)index;
  buf_add(&k, &ix, 1);
  buf_add(&k, &sl, 4);
  buf_add(&k, suffix.p, suffix.n);
  buf_add(&k, value.p, value.n);
  int isnew;
  struct hrec *r = ht_get(&xtab, k.p, k.n, 1, &isnew);
  free(k.p);
  if (!isnew) return (uint32_t)r->val;
  if (nx_ids == x_cap) {
    x_cap = x_cap ? x_cap * 2 : 64;
    x_index = xrealloc(x_index, x_cap);
    x_suffix = xrealloc(x_suffix, x_cap * sizeof *x_suffix);
    x_value = xrealloc(x_value, x_cap * sizeof *x_value);
  }
  x_index[nx_ids] = ix;
  x_suffix[nx_ids] = (struct str){ r->key + 5, suffix.n };
  x_value[nx_ids] = (struct str){ r->key + 5 + suffix.n, value.n };
  r->val = nx_ids;
  return (uint32_t)nx_ids++;
}

static size_t align_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
static size_t xattr_entry_size(size_t suffix, size_t value) { return align_up(4 + suffix + value, 4); }

/* EROFS_XATTR_INDEX_*; 0 when EROFS cannot name it. */
static unsigned xattr_index(struct str name, struct str *suffix) {
  static const struct { unsigned index; const char *prefix; } pre[] = {
    { 1, "user." }, { 2, "system.posix_acl_access" }, { 3, "system.posix_acl_default" },
    { 4, "trusted." }, { 5, "lustre." }, { 6, "security." },
  };
  for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
    size_t pl = strlen(pre[i].prefix);
    if (name.n < pl || memcmp(name.p, pre[i].prefix, pl) != 0) continue;
    *suffix = (struct str){ name.p + pl, name.n - pl };
    int acl = pre[i].index == 2 || pre[i].index == 3;
    if (acl != (suffix->n == 0)) return 0; /* ACL names are complete names, the others prefixes */
    return pre[i].index;
  }
  return 0;
}

static struct htab xname_tab; /* ('N', entry) + name -> last index + 1, for entries with many xattrs */
static uint64_t xname_seq;

/* The entry's xattrs as interned ids (a repeated name: the last value, in the first's place). */
static void intern_xattrs(const struct entry *e, struct inode *n) {
  n->xattrs = NULL;
  n->nxattrs = 0;
  if (e->nx == 0) return;
  uint32_t *ids = arena(e->nx * sizeof *ids);
  uint32_t cnt = 0;
  size_t *last = NULL;
  int *first = NULL;
  if (e->nx > 32) {
    xname_seq++;
    last = xmalloc(e->nx * sizeof *last);
    first = xmalloc(e->nx * sizeof *first);
    for (size_t i = 0; i < e->nx; i++) {
      size_t kl;
      const unsigned char *k = mkkey(((uint64_t)'N' << 40) | xname_seq, e->xname[i].p, e->xname[i].n, &kl);
      int isnew;
      struct hrec *r = ht_get(&xname_tab, k, kl, 1, &isnew);
      first[i] = isnew;
      if (isnew) r->val = i;
      last[r->val] = i; /* r->val: the first occurrence */
    }
  }
  for (size_t i = 0; i < e->nx; i++) {
    size_t li = i;
    if (first) {
      if (!first[i]) continue;
      li = last[i];
    } else {
      int dup = 0;
      for (size_t j = 0; j < i && !dup; j++) dup = str_eq(e->xname[j], e->xname[i]);
      if (dup) continue;
      for (size_t j = i + 1; j < e->nx; j++) if (str_eq(e->xname[j], e->xname[i])) li = j;
    }
    struct str name = e->xname[i], value = e->xvalue[li];
    if (has_prefix(name, S("trusted.overlay.")) || has_prefix(name, S("user.overlay."))) continue;
    struct str suffix;
    unsigned ix = xattr_index(name, &suffix);
    if (!ix || suffix.n > 255 || value.n > 0xffff) continue;
    ids[cnt++] = intern(ix, suffix, value);
  }
  free(last);
  free(first);
  if (cnt) {
    n->xattrs = ids;
    n->nxattrs = cnt;
  }
}

static size_t xattr_worst(const struct inode *n) {
  if (!n->nxattrs) return 0;
  size_t s = XATTR_IBODY_HEADER;
  for (uint32_t i = 0; i < n->nxattrs; i++) s += xattr_entry_size(x_suffix[n->xattrs[i]].n, x_value[n->xattrs[i]].n);
  return s;
}

static int inlinable(const struct inode *n, size_t tail_len) {
  return EXTENDED_SIZE + xattr_worst(n) + tail_len <= BLOCK;
}

static void set_meta(struct inode *n, const struct entry *e, uint32_t type) {
  n->mode = type | (e->mode & 07777);
  n->uid = (uint64_t)e->uid;
  n->gid = (uint64_t)e->gid;
  n->mtime = e->mtime;
  n->mtime_nsec = (uint32_t)e->mtime_nsec;
  intern_xattrs(e, n);
}

static struct inode *leaf(const struct entry *e, uint32_t type) {
  struct inode *n = new_inode();
  set_meta(n, e, type);
  if (nleaves == leaves_cap) {
    leaves_cap = leaves_cap ? leaves_cap * 2 : 1024;
    leaves = xrealloc(leaves, leaves_cap * sizeof *leaves);
  }
  leaves[nleaves++] = n;
  return n;
}

/* The directory at path (made 0755 root:root when missing). */
static struct inode *parent_dir(const struct str *raw, struct str path) {
  struct inode *d = &g_root;
  size_t i = 0;
  while (i < path.n) {
    size_t j = i;
    while (j < path.n && path.p[j] != '/') j++;
    struct inode *next = kid_get(d->dir, path.p + i, j - i);
    if (!next) {
      if (j - i > NAME_MAX_EROFS) hostile(raw, "name component longer than 255 bytes");
      next = new_inode();
      next->mode = S_IFDIR_ | 0755;
      next->dir = new_dir();
      kid_set(d->dir, path.p + i, j - i, next);
    } else if (!next->dir) {
      struct str c = { path.p + i, j - i };
      hostile(raw, "parent \"%S\" is not a directory of this layer", &c);
    }
    d = next;
    i = j + 1;
  }
  return d;
}

/* A hardlink target: an existing non-directory, reached through directories only. */
static struct inode *lookup(const struct str *raw, struct str path) {
  struct inode *d = &g_root;
  size_t i = 0;
  while (path.n > 0) {
    size_t j = i;
    while (j < path.n && path.p[j] != '/') j++;
    struct inode *next = kid_get(d->dir, path.p + i, j - i);
    if (!next) break;
    if (j >= path.n) {
      if (next->dir) break;
      return next;
    }
    if (!next->dir) break;
    d = next;
    i = j + 1;
  }
  hostile(raw, "hardlink target is not an earlier non-directory entry of this layer");
}

static uint32_t encode_dev(uint32_t major, uint32_t minor) {
  return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffu) << 12);
}

static struct buf pathbuf;

static void on_entry(struct entry *e) {
  struct str path = { (const unsigned char *)"", 0 };
  int drop = validate(e, &pathbuf, &path);
  const struct str *raw = &e->name;
  if (e->uid < 0 || e->uid > 0xffffffffLL || e->gid < 0 || e->gid > 0xffffffffLL) hostile(raw, "uid/gid %L:%L out of range", e->uid, e->gid);
  if (e->devmajor < 0 || e->devmajor > 0xfff || e->devminor < 0 || e->devminor > 0xfffff) {
    hostile(raw, "device number %L:%L out of range", e->devmajor, e->devminor);
  }
  cur = NULL;
  cur_skip = 1;
  if (drop) return;
  if (path.n == 0) {
    set_meta(&g_root, e, S_IFDIR_);
    return;
  }
  size_t b = path.n;
  while (b > 0 && path.p[b - 1] != '/') b--;
  struct str base = { path.p + b, path.n - b };
  if (base.n > NAME_MAX_EROFS) hostile(raw, "name component longer than 255 bytes");
  struct inode *dir = parent_dir(raw, (struct str){ path.p, b > 0 ? b - 1 : 0 });
  struct dirinfo *info = dir->dir;
  if (has_prefix(base, WH)) {
    if (str_eq(base, WH_OPQ)) info->opaque = 1;
    else if (!has_prefix(base, WH_META)) add_whiteout(info, base.p + 4, base.n - 4);
    return; /* a whiteout's own data (if any) is dropped */
  }
  struct inode *existing = kid_get(info, base.p, base.n);
  switch (e->type) {
  case T_DIR: {
    if (existing && existing->dir) {
      set_meta(existing, e, S_IFDIR_); /* re-added directory: keeps its children */
      return;
    }
    struct inode *d = new_inode();
    d->dir = new_dir();
    set_meta(d, e, S_IFDIR_);
    kid_set(info, base.p, base.n, d);
    return;
  }
  case T_LINK: {
    struct buf lb = { 0 };
    struct str target = normalize(&e->linkname, &lb, 1, raw);
    struct inode *t = lookup(raw, target);
    free(lb.p);
    kid_set(info, base.p, base.n, t);
    return;
  }
  case T_SYMLINK: {
    if (e->linkname.n > MAX_SYMLINK) hostile(raw, "symlink target longer than 4095 bytes");
    struct inode *n = leaf(e, S_IFLNK_);
    n->size = e->linkname.n;
    if (inlinable(n, e->linkname.n)) {
      unsigned char *view;
      n->tail = (int64_t)tail_reserve(e->linkname.n, &view);
      memcpy(view, e->linkname.p, e->linkname.n);
    } else {
      n->iu = out_pos / BLOCK;
      out_write(e->linkname.p, e->linkname.n);
      out_skip(align_up(e->linkname.n, BLOCK) - e->linkname.n);
    }
    kid_set(info, base.p, base.n, n);
    return;
  }
  case T_CHR: case T_BLK: {
    struct inode *n = leaf(e, e->type == T_BLK ? S_IFBLK_ : S_IFCHR_);
    n->iu = encode_dev((uint32_t)e->devmajor, (uint32_t)e->devminor);
    kid_set(info, base.p, base.n, n);
    return;
  }
  case T_FIFO:
    kid_set(info, base.p, base.n, leaf(e, S_IFIFO_));
    return;
  case T_FILE: case T_CONTIG: {
    struct inode *n = leaf(e, S_IFREG_);
    n->size = (uint64_t)e->real_size;
    size_t tail_len = n->size % BLOCK;
    int inl = tail_len > 0 && inlinable(n, tail_len);
    cur_plain = inl ? n->size - tail_len : n->size;
    if (inl) {
      n->tail = (int64_t)tail_reserve(tail_len, &cur_tail);
      cur_tail_len = tail_len;
    } else {
      cur_tail = NULL;
      cur_tail_len = 0;
    }
    cur_pos = 0;
    n->iu = out_pos / BLOCK;
    cur = n;
    cur_skip = 0;
    kid_set(info, base.p, base.n, n);
    return;
  }
  default:
    die(E_UNSUPPORTED, raw, "layer entry \"%S\": unsupported tar entry type", raw);
  }
}

static void on_data(const unsigned char *p, size_t n) {
  if (!cur) {
    if (cur_skip) return;
    corrupt("data outside a file");
  }
  size_t i = 0;
  if (cur_pos < cur_plain) {
    uint64_t k = cur_plain - cur_pos;
    if (k > n) k = n;
    out_write_ref(p, (size_t)k);
    i = (size_t)k;
    cur_pos += k;
  }
  if (i < n) {
    uint64_t at = cur_pos - cur_plain;
    if (!cur_tail || at + (n - i) > cur_tail_len) corrupt("file data beyond its size");
    memcpy(cur_tail + at, p + i, n - i);
    cur_pos += n - i;
  }
}

static void on_hole(long long len) {
  if (!cur) return;
  uint64_t left = (uint64_t)len;
  if (cur_pos < cur_plain) {
    uint64_t k = cur_plain - cur_pos;
    if (k > left) k = left;
    out_skip(k);
    cur_pos += k;
    left -= k;
  }
  if (left > 0) {
    if (!cur_tail || cur_pos - cur_plain + left > cur_tail_len) corrupt("sparse hole beyond the file size");
    cur_pos += left; /* the tail is zero-filled already */
  }
}

static void on_end(void) {
  struct inode *n = cur;
  cur = NULL;
  if (!n) return;
  if (cur_pos != n->size) corrupt("file shorter than its size");
  if (cur_tail) cur_tail = NULL;
  else out_skip(align_up(n->size, BLOCK) - n->size);
}

/* ------------------------------------------------------------------ finish (builder.ts) */

static int32_t *shared_id;
static uint32_t *shared_list;
static size_t nshared, xpos;
static int64_t build_time;
static uint32_t build_nsec;

static void put16(unsigned char *b, uint32_t v) { b[0] = (unsigned char)v; b[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *b, uint32_t v) { for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i)); }
static void put64(unsigned char *b, uint64_t v) { for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i)); }

static unsigned file_type(uint32_t mode) {
  switch (mode & S_IFMT_) {
  case S_IFREG_: return 1;
  case S_IFDIR_: return 2;
  case S_IFCHR_: return 3;
  case S_IFBLK_: return 4;
  case S_IFIFO_: return 5;
  case S_IFSOCK_: return 6;
  case S_IFLNK_: return 7;
  default: return 0;
  }
}

static size_t xattr_size(const struct inode *n) {
  if (!n->nxattrs) return 0;
  size_t s = XATTR_IBODY_HEADER;
  for (uint32_t i = 0; i < n->nxattrs; i++) {
    uint32_t id = n->xattrs[i];
    s += shared_id[id] >= 0 ? 4 : xattr_entry_size(x_suffix[id].n, x_value[id].n);
  }
  return s;
}

static int compact(const struct inode *n) {
  return n->mtime == build_time && n->mtime_nsec == build_nsec && n->uid <= 0xffff && n->gid <= 0xffff && n->nlink <= 0xffff && n->size <= 0xffffffffu;
}

static size_t isize(const struct inode *n) { return compact(n) ? COMPACT_SIZE : EXTENDED_SIZE; }

static size_t tail_len(const struct inode *n) {
  if (n->dir) return n->dir->tail_used;
  return n->tail >= 0 ? n->size % BLOCK : 0;
}

static int name_cmp(const void *a, const void *b) {
  const struct child *x = a, *y = b;
  size_t m = x->name.n < y->name.n ? x->name.n : y->name.n;
  int c = memcmp(x->name.p, y->name.p, m);
  if (c) return c;
  return x->name.n < y->name.n ? -1 : x->name.n > y->name.n;
}

/* Sorted names, block starts, size, inline tail, first block; returns the next free block. */
static uint64_t layout_dir(struct inode *d, uint64_t blk) {
  struct dirinfo *info = d->dir;
  size_t n = info->nkids + 2;
  info->sorted = xmalloc(n * sizeof *info->sorted);
  memcpy(info->sorted, info->kids, info->nkids * sizeof *info->kids);
  info->sorted[info->nkids] = (struct child){ S("."), d };
  info->sorted[info->nkids + 1] = (struct child){ S(".."), info->parent };
  qsort(info->sorted, n, sizeof *info->sorted, name_cmp);
  info->nsorted = n;
  size_t cap = 4;
  info->starts = xmalloc(cap * sizeof *info->starts);
  info->starts[0] = 0;
  info->nstarts = 1;
  size_t used = 0;
  for (size_t i = 0; i < n; i++) {
    size_t need = DIRENT_SIZE + info->sorted[i].name.n;
    if (used + need > BLOCK) {
      if (info->nstarts == cap) {
        cap *= 2;
        info->starts = xrealloc(info->starts, cap * sizeof *info->starts);
      }
      info->starts[info->nstarts++] = (uint32_t)i;
      used = 0;
    }
    used += need;
  }
  d->size = (uint64_t)(info->nstarts - 1) * BLOCK + used;
  if (d->size > 0xffffffffu) die(E_UNSUPPORTED, NULL, "layer has a directory too large for EROFS");
  int inl = isize(d) + xattr_size(d) + used <= BLOCK;
  size_t full = inl ? info->nstarts - 1 : info->nstarts;
  info->tail_used = inl ? (uint32_t)used : 0;
  d->iu = full > 0 ? blk : 0;
  return blk + full;
}

static void encode_dir_block(const struct inode *d, size_t b, unsigned char *buf) {
  const struct dirinfo *info = d->dir;
  size_t from = info->starts[b];
  size_t to = b + 1 < info->nstarts ? info->starts[b + 1] : info->nsorted;
  size_t nameoff = (to - from) * DIRENT_SIZE;
  for (size_t i = from; i < to; i++) {
    const struct child *c = &info->sorted[i];
    unsigned char *de = buf + (i - from) * DIRENT_SIZE;
    put64(de, c->node->nid);
    put16(de + 8, (uint32_t)nameoff);
    de[10] = (unsigned char)file_type(c->node->mode);
    de[11] = 0;
    memcpy(buf + nameoff, c->name.p, c->name.n);
    nameoff += c->name.n;
  }
}

static size_t write_xattr_entry(unsigned char *buf, size_t off, uint32_t id) {
  struct str s = x_suffix[id], v = x_value[id];
  buf[off] = (unsigned char)s.n;
  buf[off + 1] = x_index[id];
  put16(buf + off + 2, (uint32_t)v.n);
  memcpy(buf + off + 4, s.p, s.n);
  memcpy(buf + off + 4 + s.n, v.p, v.n);
  size_t end = off + 4 + s.n + v.n;
  size_t padded = off + align_up(end - off, 4);
  memset(buf + end, 0, padded - end);
  return padded;
}

static void encode_record(const struct inode *n, uint64_t ino, unsigned char *p) {
  size_t tail = tail_len(n);
  size_t xs = xattr_size(n);
  uint32_t icount = xs ? (uint32_t)((xs - XATTR_IBODY_HEADER) / 4 + 1) : 0;
  uint32_t layout = tail > 0 ? 2 : 0; /* FLAT_INLINE : FLAT_PLAIN */
  size_t o;
  if (compact(n)) {
    put16(p, (layout << 1) | 0);
    put16(p + 2, icount);
    put16(p + 4, n->mode & 0xffff);
    put16(p + 6, n->nlink);
    put32(p + 8, (uint32_t)n->size);
    put32(p + 12, 0);
    put32(p + 16, (uint32_t)n->iu);
    put32(p + 20, (uint32_t)ino);
    put16(p + 24, (uint32_t)n->uid);
    put16(p + 26, (uint32_t)n->gid);
    put32(p + 28, 0);
    o = COMPACT_SIZE;
  } else {
    put16(p, (layout << 1) | 1);
    put16(p + 2, icount);
    put16(p + 4, n->mode & 0xffff);
    put16(p + 6, 0);
    put64(p + 8, n->size);
    put32(p + 16, (uint32_t)n->iu);
    put32(p + 20, (uint32_t)ino);
    put32(p + 24, (uint32_t)n->uid);
    put32(p + 28, (uint32_t)n->gid);
    put64(p + 32, (uint64_t)n->mtime);
    put32(p + 40, n->mtime_nsec);
    put32(p + 44, n->nlink);
    memset(p + 48, 0, 16);
    o = EXTENDED_SIZE;
  }
  if (n->nxattrs) {
    uint32_t nsh = 0;
    for (uint32_t i = 0; i < n->nxattrs; i++) nsh += shared_id[n->xattrs[i]] >= 0;
    put32(p + o, 0);
    p[o + 4] = (unsigned char)nsh;
    o += XATTR_IBODY_HEADER;
    for (uint32_t i = 0; i < n->nxattrs; i++) {
      int32_t sid = shared_id[n->xattrs[i]];
      if (sid >= 0) {
        put32(p + o, (uint32_t)sid);
        o += 4;
      }
    }
    for (uint32_t i = 0; i < n->nxattrs; i++) {
      if (shared_id[n->xattrs[i]] < 0) o = write_xattr_entry(p, o, n->xattrs[i]);
    }
  }
  if (tail > 0) {
    if (n->dir) encode_dir_block(n, n->dir->nstarts - 1, p + o);
    else tail_copy((uint64_t)n->tail, tail, p + o);
  }
}

struct tcount { int64_t mtime; uint32_t nsec; };

static void finish(uint64_t *inodes_out, uint64_t *image_bytes) {
  uint32_t opaque_id = intern(P.xattr_user ? 1 : 4, S("overlay.opaque"), S("y"));

  /* 1. directories in BFS order (root first), whiteouts as char 0/0, nlinks, parents */
  size_t ndirs = 1, dcap = 1024;
  struct inode **dirs = xmalloc(dcap * sizeof *dirs);
  dirs[0] = &g_root;
  g_root.dir->parent = &g_root;
  for (size_t i = 0; i < ndirs; i++) {
    struct inode *d = dirs[i];
    struct dirinfo *info = d->dir;
    for (size_t w = 0; w < info->nwh; w++) {
      if (kid_get(info, info->wh[w].p, info->wh[w].n)) continue; /* the layer's own entry wins */
      struct inode *wh = new_inode();
      wh->mode = S_IFCHR_;
      if (nleaves == leaves_cap) {
        leaves_cap = leaves_cap ? leaves_cap * 2 : 1024;
        leaves = xrealloc(leaves, leaves_cap * sizeof *leaves);
      }
      leaves[nleaves++] = wh;
      kid_set(info, info->wh[w].p, info->wh[w].n, wh);
    }
    if (info->opaque) {
      uint32_t *ids = arena((d->nxattrs + 1) * sizeof *ids);
      uint32_t k = 0;
      for (uint32_t j = 0; j < d->nxattrs; j++) if (d->xattrs[j] != opaque_id) ids[k++] = d->xattrs[j];
      ids[k++] = opaque_id;
      d->xattrs = ids;
      d->nxattrs = k;
    }
    uint32_t sub = 0;
    for (size_t k = 0; k < info->nkids; k++) {
      struct inode *c = info->kids[k].node;
      if (c->dir) {
        c->dir->parent = d;
        if (ndirs == dcap) {
          dcap *= 2;
          dirs = xrealloc(dirs, dcap * sizeof *dirs);
        }
        dirs[ndirs++] = c;
        sub++;
      } else {
        c->nlink++;
      }
    }
    d->nlink = 2 + sub;
  }
  size_t nall = ndirs;
  struct inode **all = xmalloc((ndirs + nleaves) * sizeof *all);
  memcpy(all, dirs, ndirs * sizeof *dirs);
  for (size_t i = 0; i < nleaves; i++) if (leaves[i]->nlink > 0) all[nall++] = leaves[i];

  /* 2. shared xattrs: (name, value) pairs carried by two or more inodes */
  uint32_t *refs = xcalloc(nx_ids, sizeof *refs);
  for (size_t i = 0; i < nall; i++) for (uint32_t j = 0; j < all[i]->nxattrs; j++) refs[all[i]->xattrs[j]]++;
  shared_id = xmalloc((nx_ids ? nx_ids : 1) * sizeof *shared_id);
  shared_list = xmalloc((nx_ids ? nx_ids : 1) * sizeof *shared_list);
  for (size_t id = 0; id < nx_ids; id++) {
    shared_id[id] = -1;
    if (refs[id] < 2) continue;
    size_t sz = xattr_entry_size(x_suffix[id].n, x_value[id].n);
    if (xpos % BLOCK + sz > BLOCK) xpos = align_up(xpos, BLOCK);
    shared_id[id] = (int32_t)(xpos / 4);
    shared_list[nshared++] = (uint32_t)id;
    xpos += sz;
  }
  free(refs);

  /* 3. build time: the most common (mtime, nsec), so that those inodes can be compact */
  {
    struct htab counts = { 0 };
    uint64_t best = 0;
    for (size_t i = 0; i < nall; i++) {
      struct tcount t = { all[i]->mtime, all[i]->mtime_nsec };
      unsigned char key[12];
      memcpy(key, &t.mtime, 8);
      memcpy(key + 8, &t.nsec, 4);
      struct hrec *r = ht_get(&counts, key, sizeof key, 1, NULL);
      uint64_t c = ++r->val;
      if (c > best) {
        best = c;
        build_time = t.mtime;
        build_nsec = t.nsec;
      }
    }
    free(counts.slots);
  }

  /* 4. directory sizes, their full blocks after the file data */
  out_flush();
  uint64_t blk = out_pos / BLOCK;
  for (size_t i = 0; i < ndirs; i++) blk = layout_dir(dirs[i], blk);

  /* 5. shared xattr area, 6. meta area: each record's place (nid) */
  uint64_t xattr_blk = nshared ? blk : 0;
  blk += align_up(xpos, BLOCK) / BLOCK;
  uint64_t meta_blk = blk;
  uint64_t pos = 0;
  uint16_t *rec_size = xmalloc((nall ? nall : 1) * sizeof *rec_size);
  for (size_t i = 0; i < nall; i++) {
    struct inode *n = all[i];
    size_t rec = isize(n) + xattr_size(n) + tail_len(n);
    if (rec > BLOCK) die(E_UNSUPPORTED, NULL, "layer entry has more than 4 KiB of xattrs (not supported by this EROFS writer)");
    rec_size[i] = (uint16_t)rec;
    if (pos % BLOCK + rec > BLOCK) pos = align_up(pos, BLOCK);
    n->nid = pos / SLOT;
    pos = align_up(pos + rec, SLOT);
  }
  uint64_t meta_blocks = align_up(pos, BLOCK) / BLOCK;
  uint64_t total_blocks = meta_blk + meta_blocks;
  if (total_blocks > 0xffffffffu) die(E_UNSUPPORTED, NULL, "layer too large for an EROFS image (16 TiB)");
  if (g_root.nid != 0) die(E_IO, NULL, "bug: root inode not first");

  /* 7. directory blocks (an inline last block goes with the inode) */
  unsigned char block[BLOCK];
  for (size_t i = 0; i < ndirs; i++) {
    struct inode *d = dirs[i];
    size_t full = d->dir->tail_used ? d->dir->nstarts - 1 : d->dir->nstarts;
    if (full == 0) continue;
    out_skip(d->iu * BLOCK - out_pos);
    for (size_t b = 0; b < full; b++) {
      memset(block, 0, sizeof block);
      encode_dir_block(d, b, block);
      out_write(block, BLOCK);
    }
  }
  /* 8. shared xattrs */
  if (nshared) {
    out_skip(xattr_blk * BLOCK - out_pos);
    size_t len = align_up(xpos, BLOCK);
    unsigned char *area = xcalloc(1, len);
    for (size_t i = 0; i < nshared; i++) write_xattr_entry(area, (size_t)shared_id[shared_list[i]] * 4, shared_list[i]);
    out_write(area, len);
    free(area);
  }
  /* 9. meta area, in 4 MiB pieces (records never cross a block) */
  out_skip(meta_blk * BLOCK - out_pos);
  const size_t PIECE = 4u << 20;
  unsigned char *piece = xcalloc(1, PIECE);
  uint64_t piece_start = 0;
  for (size_t i = 0; i < nall; i++) {
    struct inode *n = all[i];
    uint64_t at = n->nid * SLOT;
    if (at + rec_size[i] > piece_start + PIECE) {
      uint64_t cut = at / BLOCK * BLOCK;
      out_write(piece, (size_t)(cut - piece_start));
      size_t keep = (size_t)(at - cut);
      memmove(piece, piece + (cut - piece_start), keep);
      memset(piece + keep, 0, PIECE - keep);
      piece_start = cut;
    }
    encode_record(n, i + 1, piece + (at - piece_start));
  }
  out_write(piece, (size_t)(meta_blocks * BLOCK - piece_start));
  free(piece);
  out_flush();

  /* 10. the superblock last: a torn image has no magic */
  memset(block, 0, sizeof block);
  unsigned char *sb = block + 1024;
  put32(sb, 0xe0f5e1e2u);
  sb[12] = 12; /* blkszbits */
  put16(sb + 14, (uint32_t)g_root.nid);
  put64(sb + 16, nall);
  put64(sb + 24, (uint64_t)build_time);
  put32(sb + 32, build_nsec);
  put32(sb + 36, (uint32_t)total_blocks);
  put32(sb + 40, (uint32_t)meta_blk);
  put32(sb + 44, (uint32_t)xattr_blk);
  pwrite_all(g_img, block, BLOCK, 0);
  if (ftruncate(g_img, (off_t)(total_blocks * BLOCK)) != 0) io_fail("truncate the image", errno);
  *inodes_out = nall;
  *image_bytes = total_blocks * BLOCK;
}

/* ------------------------------------------------------------------ command */

/* Waits for the decompressor (our stdin is closed first: if it still writes, it gets
 * SIGPIPE, which is not its failure); 1 with its status when it failed. */
static int decomp_failed(int *status) {
  close(0);
  while (wait4(g_decomp, status, 0, NULL) < 0) {
    if (errno != EINTR) return 0;
  }
  if (WIFEXITED(*status)) return WEXITSTATUS(*status) != 0;
  return !(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGPIPE);
}

_Noreturn static void decomp_die(int st) {
  g_decomp = 0;
  if (WIFEXITED(st)) die(E_DECOMPRESS, NULL, "cannot decompress: exit status %L", (long long)WEXITSTATUS(st));
  die(E_DECOMPRESS, NULL, "cannot decompress: killed by signal %L", (long long)WTERMSIG(st));
}

/* PROG -dcq reads our stdin; we read its output. */
static void start_decompressor(const char *prog) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) fail(0, "erofs-write: pipe", prog, errno);
  (void)fcntl(p[0], F_SETPIPE_SZ, 1 << 20); /* fewer, bigger reads; best effort */
  pid_t pid = fork();
  if (pid < 0) fail(0, "erofs-write: fork", prog, errno);
  if (pid == 0) {
    if (dup2(p[1], 1) < 0) _exit(127);
    char *const args[] = { (char *)prog, (char *)"-dcq", NULL };
    execv(prog, args);
    report("erofs-write: exec", prog, strerrorname_np(errno) ? strerrorname_np(errno) : "EUNKNOWN", strerror(errno));
    _exit(127);
  }
  close(p[1]);
  if (dup2(p[0], 0) < 0) fail(0, "erofs-write: dup2", prog, errno);
  close(p[0]);
  g_decomp = pid;
}

/* Only what streaming into already open files needs; anything else kills the process. */
static void confine(void) {
  static const int allowed[] = {
    SYS_read, SYS_write, SYS_pread64, SYS_pwrite64, SYS_pwritev, SYS_lseek, SYS_ftruncate, SYS_fstat, SYS_newfstatat,
    SYS_close, SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_madvise, SYS_exit, SYS_exit_group,
    SYS_rt_sigreturn, SYS_getrandom, SYS_sysinfo, SYS_wait4,
  };
  enum { N = sizeof allowed / sizeof allowed[0] };
  struct sock_filter f[N + 6];
  size_t k = 0;
  f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  for (size_t i = 0; i < N; i++) f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i], (unsigned char)(N - i), 0);
  f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = { .len = (unsigned short)k, .filter = f };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(0, "erofs-write: prctl", "PR_SET_NO_NEW_PRIVS", errno);
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) fail(0, "erofs-write: prctl", "PR_SET_SECCOMP", errno);
}

static long long arg_num(const char *s, const char *what) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < 0) usage(what);
  return v;
}

int cmd_erofs_write(int argc, char **argv) {
  const char *image = NULL, *tails = NULL, *decompress = NULL;
  int progress = 0;
  P.max_bytes = -1;
  P.max_entries = -1;
  P.xattr_user = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--allow-devices") == 0) { P.allow_devices = 1; continue; }
    if (strcmp(a, "--progress") == 0) { progress = 1; continue; }
    if (i + 1 >= argc) usage("erofs-write: an option without its value");
    const char *v = argv[++i];
    if (strcmp(a, "--image") == 0) image = v;
    else if (strcmp(a, "--tails") == 0) tails = v;
    else if (strcmp(a, "--decompress") == 0) {
      if (v[0] != '/') usage("erofs-write --decompress /ABSOLUTE/PATH");
      decompress = v;
    }
    else if (strcmp(a, "--max-bytes") == 0) P.max_bytes = arg_num(v, "erofs-write --max-bytes N");
    else if (strcmp(a, "--max-entries") == 0) P.max_entries = arg_num(v, "erofs-write --max-entries N");
    else if (strcmp(a, "--xattr-prefix") == 0) {
      if (strcmp(v, "trusted") == 0) P.xattr_user = 0;
      else if (strcmp(v, "user") == 0) P.xattr_user = 1;
      else usage("erofs-write --xattr-prefix trusted|user");
    } else usage("erofs-write: unknown option");
  }
  if (!image || !tails || P.max_bytes < 0 || P.max_entries < 0 || P.xattr_user < 0) {
    usage("erofs-write --image PATH --tails PATH --max-bytes N --max-entries N --xattr-prefix trusted|user [--allow-devices] [--progress]");
  }
  g_img = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (g_img < 0) fail(0, "erofs-write: open", image, errno);
  g_spill = open(tails, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (g_spill < 0) fail(0, "erofs-write: open", tails, errno);
  if (unlink(tails) != 0) fail(0, "erofs-write: unlink", tails, errno);
  pend = xmalloc(WRITE_BATCH);
  unsigned char *in = xmalloc(READ_CHUNK);
  g_root.mode = S_IFDIR_ | 0755;
  g_root.tail = -1;
  g_root.dir = new_dir();
  if (decompress) start_decompressor(decompress);
  confine();

  struct sha256 h;
  sha256_init(&h);
  unsigned long long tar_bytes = 0, next_progress = PROGRESS_EVERY;
  for (;;) {
    ssize_t r = read(0, in, READ_CHUNK);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) io_fail("read the layer", errno);
    if (r == 0) break;
    tar_bytes += (unsigned long long)r;
    if (tar_bytes > (unsigned long long)P.max_bytes) die(E_HOSTILE, NULL, "hostile layer: decompresses beyond %L bytes (limit)", P.max_bytes);
    sha256_update(&h, in, (size_t)r);
    tar_push(in, (size_t)r);
    out_flush(); /* file data is written from `in`, which the next read reuses */
    if (progress && tar_bytes >= next_progress) {
      char line[64];
      int k = snprintf(line, sizeof line, "p %llu\n", tar_bytes);
      (void)write_all(1, line, (size_t)k);
      next_progress = tar_bytes + PROGRESS_EVERY;
    }
  }
  if (g_decomp > 0) {
    int st;
    if (decomp_failed(&st)) decomp_die(st);
    g_decomp = 0;
  }
  tar_end();
  uint64_t inodes, image_bytes;
  finish(&inodes, &image_bytes);
  uint8_t dg[32];
  sha256_final(&h, dg);
  char line[256];
  int k = snprintf(line, sizeof line, "ok %lld %llu %llu %llu ", v_entries, (unsigned long long)inodes, (unsigned long long)image_bytes, tar_bytes);
  for (int i = 0; i < 32; i++) k += snprintf(line + k, sizeof line - (size_t)k, "%02x", dg[i]);
  line[k++] = '\n';
  if (write_all(1, line, (size_t)k) != 0) io_fail("write the result", errno);
  return 0;
}
