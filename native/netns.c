/*
 * netns-exec NETNS CONFIG -- CMD [ARG...]
 *
 * Enters the network namespace NETNS (a file such as /run/netns/berth-web, made by
 * `ip netns add` in the unit's ExecStartPre=), configures it from CONFIG over rtnetlink,
 * and execs CMD there (systemd-nspawn, in a machine's ExecStart=). It replaces three
 * processes per start (`ip -n NS -batch`, `nsenter … sysctl`, and nsenter itself): one
 * fork+exec is ~1 ms of CPU here, but ip, sysctl and nsenter each pay ld.so and their
 * own start-up, ~10-15 ms of wall time per start under load.
 *
 * Inside the namespace, in this order: loopback up; the link's MAC; its address
 * (replaced, so a retry after a failed start is idempotent); the link up; the default
 * route via the gateway (replaced); net.ipv4.ip_unprivileged_port_start=0 and
 * net.ipv4.ping_group_range="0 2147483647" (per namespace, /proc/sys/net follows the
 * caller's namespace). Everything is in place before CMD runs, so a payload that
 * connects at its first instruction finds the network ready.
 *
 * CONFIG is written by berth (/etc/berth/machines/NAME/netns.conf, never container
 * content); it must be a root-owned regular file, not group/world-writable, of at most
 * 4 KiB, with exactly these keys, each once:
 *   link IFNAME        address A.B.C.D/PREFIX
 *   mac XX:XX:XX:XX:XX:XX   gateway A.B.C.D
 * Lines starting with '#' and empty lines are ignored; anything else is a usage error.
 */
#include "helper.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define MAX_CONFIG 4096

struct netcfg {
  char link[IFNAMSIZ];
  unsigned char mac[6];
  struct in_addr addr;
  unsigned prefix;
  struct in_addr gateway;
  unsigned seen; /* bit per key */
};

static _Noreturn void bad_config(const char *path, const char *what) {
  fail_msg(HX_USAGE, "netns config", path, "EINVAL", what);
}

static int parse_mac(const char *s, unsigned char out[6]) {
  unsigned v[6];
  char tail;
  if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6) return -1;
  if (strlen(s) != 17) return -1;
  for (int i = 0; i < 6; i++) out[i] = (unsigned char)v[i];
  if (out[0] & 1) return -1; /* multicast */
  return 0;
}

static void parse_config(const char *path, struct netcfg *c) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) fail(0, "open netns config", path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) fail(0, "fstat netns config", path, errno);
  if (!S_ISREG(st.st_mode)) fail_msg(HX_REFUSED, "netns config", path, "EINVAL", "not a regular file");
  if (st.st_uid != 0 || (st.st_mode & 022)) fail_msg(HX_PERM, "netns config", path, "EPERM", "must be owned by root and not group- or world-writable");
  if (st.st_size > MAX_CONFIG) fail_msg(HX_REFUSED, "netns config", path, "EFBIG", "larger than 4 KiB");
  char buf[MAX_CONFIG + 1];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(0, "read netns config", path, errno);
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n >= MAX_CONFIG) fail_msg(HX_REFUSED, "netns config", path, "EFBIG", "larger than 4 KiB");
  }
  close(fd);
  buf[n] = 0;
  if (memchr(buf, 0, n)) bad_config(path, "contains a NUL byte");
  memset(c, 0, sizeof *c);
  for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (*line == '#' || *line == 0) continue;
    char *sp = strchr(line, ' ');
    if (!sp) bad_config(path, "a line is not KEY VALUE");
    *sp = 0;
    const char *key = line, *val = sp + 1;
    unsigned bit;
    if (strcmp(key, "link") == 0) {
      bit = 1;
      size_t l = strlen(val);
      if (l == 0 || l >= IFNAMSIZ || strchr(val, '/') || strchr(val, ' ')) bad_config(path, "link: not an interface name");
      memcpy(c->link, val, l + 1);
    } else if (strcmp(key, "mac") == 0) {
      bit = 2;
      if (parse_mac(val, c->mac) != 0) bad_config(path, "mac: not a unicast XX:XX:XX:XX:XX:XX");
    } else if (strcmp(key, "address") == 0) {
      bit = 4;
      char a[INET_ADDRSTRLEN];
      const char *slash = strchr(val, '/');
      char *end = NULL;
      if (!slash || (size_t)(slash - val) >= sizeof a) bad_config(path, "address: not A.B.C.D/PREFIX");
      memcpy(a, val, (size_t)(slash - val));
      a[slash - val] = 0;
      errno = 0;
      unsigned long p = strtoul(slash + 1, &end, 10);
      if (inet_pton(AF_INET, a, &c->addr) != 1 || errno || !end || *end || slash[1] == 0 || p < 1 || p > 30) bad_config(path, "address: not A.B.C.D/PREFIX (1-30)");
      c->prefix = (unsigned)p;
    } else if (strcmp(key, "gateway") == 0) {
      bit = 8;
      if (inet_pton(AF_INET, val, &c->gateway) != 1) bad_config(path, "gateway: not A.B.C.D");
    } else {
      bad_config(path, "unknown key");
    }
    if (c->seen & bit) bad_config(path, "a key is given twice");
    c->seen |= bit;
  }
  if (c->seen != 15) bad_config(path, "needs link, mac, address and gateway");
}

struct nlreq {
  struct nlmsghdr n;
  union {
    struct ifinfomsg ifi;
    struct ifaddrmsg ifa;
    struct rtmsg rtm;
  } u;
  char attrs[128];
};

static void add_attr(struct nlreq *r, unsigned short type, const void *data, size_t len) {
  size_t off = NLMSG_ALIGN(r->n.nlmsg_len);
  size_t need = RTA_SPACE(len);
  if (off + need > sizeof *r) fail_msg(HX_FAIL, "netlink", "request", "E2BIG", "attributes do not fit");
  struct rtattr *a = (struct rtattr *)((char *)r + off);
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(a), data, len);
  r->n.nlmsg_len = (unsigned)(off + need);
}

static unsigned g_seq;

/* Sends one request and waits for its ACK; a negative error fails naming STEP and WHAT. */
static void talk(int fd, struct nlreq *r, const char *step, const char *what) {
  r->n.nlmsg_seq = ++g_seq;
  r->n.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  for (;;) {
    ssize_t s = sendto(fd, r, r->n.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    if (s >= 0) break;
    if (errno != EINTR) fail(0, step, what, errno);
  }
  char buf[8192] __attribute__((aligned(4)));
  for (;;) {
    ssize_t got = recv(fd, buf, sizeof buf, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      fail(0, step, what, errno);
    }
    size_t len = (size_t)got;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != r->n.nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        if (e->error == 0) return;
        fail(0, step, what, -e->error);
      }
    }
  }
}

static void init_req(struct nlreq *r, unsigned short type, unsigned short flags, size_t body) {
  memset(r, 0, sizeof *r);
  r->n.nlmsg_len = (unsigned)NLMSG_LENGTH(body);
  r->n.nlmsg_type = type;
  r->n.nlmsg_flags = flags;
}

static void link_set(int fd, int index, const char *name, const unsigned char *mac, int up) {
  struct nlreq r;
  init_req(&r, RTM_NEWLINK, 0, sizeof r.u.ifi);
  r.u.ifi.ifi_family = AF_UNSPEC;
  r.u.ifi.ifi_index = index;
  if (up) {
    r.u.ifi.ifi_flags = IFF_UP;
    r.u.ifi.ifi_change = IFF_UP;
  }
  if (mac) add_attr(&r, IFLA_ADDRESS, mac, 6);
  talk(fd, &r, mac ? "netlink: set link address" : "netlink: set link up", name);
}

static void write_sysctl(const char *path, const char *value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) fail(0, "open sysctl", path, errno);
  size_t n = strlen(value);
  if (write(fd, value, n) != (ssize_t)n) fail(0, "write sysctl", path, errno);
  if (close(fd) != 0) fail(0, "write sysctl", path, errno);
}

int cmd_netns_exec(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[2], "--") != 0) usage("berth-helper netns-exec NETNS CONFIG -- CMD [ARG...]");
  const char *nspath = argv[0], *cfgpath = argv[1];
  char **cmd = argv + 3;
  struct netcfg c;
  parse_config(cfgpath, &c);

  int nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) fail(0, "open netns", nspath, errno);
  if (setns(nsfd, CLONE_NEWNET) != 0) fail(0, "setns(CLONE_NEWNET)", nspath, errno);
  close(nsfd);

  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) fail(0, "socket(NETLINK_ROUTE)", nspath, errno);
  struct sockaddr_nl local = { .nl_family = AF_NETLINK };
  if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) fail(0, "bind(NETLINK_ROUTE)", nspath, errno);

  int lo = (int)if_nametoindex("lo");
  if (lo == 0) fail(0, "if_nametoindex", "lo", errno);
  int ifi = (int)if_nametoindex(c.link);
  if (ifi == 0) fail(0, "if_nametoindex", c.link, errno);

  link_set(fd, lo, "lo", NULL, 1);
  link_set(fd, ifi, c.link, c.mac, 0);

  struct nlreq r;
  init_req(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof r.u.ifa);
  r.u.ifa.ifa_family = AF_INET;
  r.u.ifa.ifa_prefixlen = (unsigned char)c.prefix;
  r.u.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  r.u.ifa.ifa_index = (unsigned)ifi;
  add_attr(&r, IFA_LOCAL, &c.addr, 4);
  add_attr(&r, IFA_ADDRESS, &c.addr, 4);
  struct in_addr brd = { .s_addr = c.addr.s_addr | htonl(0xffffffffu >> c.prefix) };
  add_attr(&r, IFA_BROADCAST, &brd, 4);
  talk(fd, &r, "netlink: add address", c.link);

  link_set(fd, ifi, c.link, NULL, 1);

  init_req(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, sizeof r.u.rtm);
  r.u.rtm.rtm_family = AF_INET;
  r.u.rtm.rtm_table = RT_TABLE_MAIN;
  r.u.rtm.rtm_protocol = RTPROT_BOOT;
  r.u.rtm.rtm_scope = RT_SCOPE_UNIVERSE;
  r.u.rtm.rtm_type = RTN_UNICAST;
  add_attr(&r, RTA_GATEWAY, &c.gateway, 4);
  unsigned oif = (unsigned)ifi;
  add_attr(&r, RTA_OIF, &oif, 4);
  talk(fd, &r, "netlink: add default route", c.link);
  close(fd);

  write_sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
  write_sysctl("/proc/sys/net/ipv4/ping_group_range", "0 2147483647");

  execvp(cmd[0], cmd);
  fail(errno == ENOENT ? HX_NOTFOUND : 0, "execvp", cmd[0], errno);
}
