/**
 * @module runtime/nspawn/rootfs-helper-source
 * The source of berth-rootfs, the tiny python3 helper that assembles a machine's root
 * filesystem (see rootfs.ts for why a helper and why python). Embedded as a string so the
 * bundled CLI carries it; rootfs.ts writes it to <root>/libexec/berth-rootfs when its
 * content changed. No `$` or backtick appears in it.
 */
export const ROOTFS_HELPER_PY = String.raw`
#!/usr/bin/python3
# berth-rootfs: assembles (and takes apart) a berth machine's root filesystem.
#   mount --target DIR --upper DIR --work DIR [--idmap BASE:SIZE] LAYER...   (layers bottom first)
#   umount DIR
# Each LAYER is an EROFS image file (*.erofs, mounted file-backed, kernel >= 6.12) or a
# directory. Layers become *detached* mounts (fsopen/fsmount, open_tree), idmapped to
# BASE:SIZE with mount_setattr(MOUNT_ATTR_IDMAP) when --idmap is given, and are handed to
# overlayfs as /proc/self/fd/N lowers: nothing but the overlay appears in the mount table,
# no file is ever chowned, and the cost is the same for any image size.
# Idempotent: an overlay already mounted on DIR is left alone. Runs as ExecStartPre=/
# ExecStopPost= of systemd-nspawn@NAME.service and from berth run without systemd.
import ctypes, os, sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_OPEN_TREE, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT, SYS_MOUNT_SETATTR = 428, 430, 431, 432, 442
OPEN_TREE_CLONE, O_CLOEXEC, AT_EMPTY_PATH, AT_RECURSIVE = 1, 0o2000000, 0x1000, 0x8000
FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 0, 1, 6
MOUNT_ATTR_RDONLY, MOUNT_ATTR_IDMAP = 0x1, 0x00100000
CLONE_NEWUSER, MNT_DETACH = 0x10000000, 2


class MountAttr(ctypes.Structure):
    _fields_ = [('attr_set', ctypes.c_uint64), ('attr_clr', ctypes.c_uint64),
                ('propagation', ctypes.c_uint64), ('userns_fd', ctypes.c_uint64)]


def fail(msg, code=1):
    sys.stderr.write(f'berth-rootfs: {msg}\n')
    sys.exit(code)


def sys_call(what, nr, *args):
    r = libc.syscall(nr, *args)
    if r < 0:
        e = ctypes.get_errno()
        fail(f'{what}: {os.strerror(e)}')
    return r


def make_userns(base, size):
    """A user namespace with uid/gid map 0 BASE SIZE, as an fd (the helper child exits)."""
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(w2)
        if libc.unshare(CLONE_NEWUSER) != 0:
            os._exit(1)
        os.write(w, b'u')
        os.read(r2, 1)
        os._exit(0)
    os.close(w)
    os.close(r2)
    if os.read(r, 1) != b'u':
        os.waitpid(pid, 0)
        fail('cannot create a user namespace for the idmap')
    for f in ('uid_map', 'gid_map'):
        with open(f'/proc/{pid}/{f}', 'w') as fh:
            fh.write(f'0 {base} {size}\n')
    fd = os.open(f'/proc/{pid}/ns/user', os.O_RDONLY | os.O_CLOEXEC)
    os.write(w2, b'x')
    os.waitpid(pid, 0)
    return fd


def erofs_mount(path):
    fs = sys_call(f'fsopen erofs ({path})', SYS_FSOPEN, b'erofs', 1)
    sys_call(f'erofs source {path}', SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, b'source', path.encode(), 0)
    sys_call('erofs ro', SYS_FSCONFIG, fs, FSCONFIG_SET_FLAG, b'ro', None, 0)
    sys_call(f'mounting {path} (file-backed EROFS needs kernel >= 6.12)', SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0)
    m = sys_call(f'fsmount {path}', SYS_FSMOUNT, fs, 1, MOUNT_ATTR_RDONLY)
    os.close(fs)
    return m


def dir_mount(path):
    return sys_call(f'open_tree {path}', SYS_OPEN_TREE, -100, path.encode(), OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE)


def idmap(mfd, userns_fd, what):
    attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    sys_call(f'idmapping {what}', SYS_MOUNT_SETATTR, mfd, b'', AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr))


def fstype_at(path):
    """Filesystem type mounted exactly at path, or None."""
    real = os.path.realpath(path)
    with open('/proc/self/mountinfo') as fh:
        found = None
        for line in fh:
            left, _, right = line.partition(' - ')
            mp = left.split(' ')[4].encode().decode('unicode_escape')
            if mp == real:
                found = right.split(' ')[0]
        return found


def cmd_mount(argv):
    opts = {'--target': None, '--upper': None, '--work': None, '--idmap': None}
    layers = []
    it = iter(argv)
    for a in it:
        if a in opts:
            opts[a] = next(it, None)
        else:
            layers.append(a)
    target, upper, work = opts['--target'], opts['--upper'], opts['--work']
    if not target or not upper or not work or not layers:
        fail('usage: mount --target DIR --upper DIR --work DIR [--idmap BASE:SIZE] LAYER...', 2)
    if fstype_at(target) == 'overlay':
        return
    for d in (target, upper, work):
        os.makedirs(d, mode=0o755, exist_ok=True)
    userns_fd = None
    if opts['--idmap']:
        base, size = (int(x) for x in opts['--idmap'].split(':'))
        userns_fd = make_userns(base, size)
    fds = []
    for layer in layers:
        m = erofs_mount(layer) if layer.endswith('.erofs') else dir_mount(layer)
        if userns_fd is not None:
            idmap(m, userns_fd, layer)
        fds.append(m)
    lower = ':'.join(f'/proc/self/fd/{m}' for m in reversed(fds))
    data = f'lowerdir={lower},upperdir={upper},workdir={work}'
    if libc.mount(b'berth', target.encode(), b'overlay', 0, data.encode()) != 0:
        fail(f'overlay on {target}: {os.strerror(ctypes.get_errno())}')


def cmd_umount(argv):
    if len(argv) != 1:
        fail('usage: umount DIR', 2)
    target = argv[0]
    while fstype_at(target) is not None:
        if libc.umount2(target.encode(), 0) != 0:
            e = ctypes.get_errno()
            if libc.umount2(target.encode(), MNT_DETACH) != 0:
                fail(f'umount {target}: {os.strerror(e)}')


def main():
    if len(sys.argv) < 2:
        fail('usage: berth-rootfs mount|umount ...', 2)
    {'mount': cmd_mount, 'umount': cmd_umount}.get(sys.argv[1], lambda _: fail(f'unknown command {sys.argv[1]}', 2))(sys.argv[2:])


main()
`.trimStart();
