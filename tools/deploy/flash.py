"""The deploy itself, on an open Board: ask the board what it has (free flash, the
files and folders in the way), refuse before writing if it will not fit, make the
folders, remove stale modules, copy every file with progress, then verify."""

from .base import EXIT_OTHER, DeployError, NoSpace, _human
from .progress import Progress
from .verify import _check_device, verify_files

RESERVE_BLOCKS = 2  # flash blocks left free on purpose (littlefs needs room to move)

DIR_BLOCKS = 2  # a littlefs directory is a metadata pair

_PREFLIGHT = """\
import os,sys
def _st(p):
 try:
  s=os.stat(p)
  return (s[0],s[6])
 except OSError:
  return None
def _ls(p):
 try:
  return [(e[0],e[1]) for e in os.ilistdir(p)]
 except OSError:
  return None
_i=sys.implementation
print(repr((tuple(os.statvfs('/')),_i.name,tuple(_i.version)[:3],getattr(_i,'_mpy',None),\
sys.platform,getattr(_i,'_machine',''),[_st(p) for p in %r],[_ls(p) for p in %r])))
"""

_REMOVE = """\
import os
for p in %r:
 os.remove(p)
"""


def _blocks(n, bs):
    return (n + bs - 1) // bs


def deploy(args, bmod, board, build, items, dirs, out=print, progress_stream=None):
    lib_pkg_dirs = [
        d for d in dirs if d.endswith("/umqtt_paho") or d.endswith("/umqtt_paho/ports")
    ]
    shadow = "/umqtt_paho"
    stat_paths = dirs + [it.dest for it in items] + [shadow]
    info = board.query(_PREFLIGHT % (stat_paths, lib_pkg_dirs))
    statvfs, stats, listings = info[0], info[6], info[7]
    what = _check_device(info, build, items, bmod, board.port, args)
    out("board: %s" % what)
    st = dict(zip(stat_paths, stats))

    bsize = statvfs[1] or statvfs[0]
    free = bsize * statvfs[4]
    total_fs = bsize * statvfs[2]

    # Directories: create the missing ones; a file in the way is an error.
    new_dirs = []
    for d in dirs:
        s = st.get(d)
        if s is None:
            new_dirs.append(d)
        elif not s[0] & 0x4000:
            raise DeployError(
                EXIT_OTHER, "%s on the board is a file, where this deploy needs a folder" % d
            )

    # Files in the package folders this deploy does not ship (stale modules; a .py there
    # would shadow the .mpy of the same name).
    shipped = set(it.dest for it in items)
    stale, stale_dirs = [], []
    for d, listing in zip(lib_pkg_dirs, listings):
        for name, typ in listing or ():
            path = d + "/" + name
            if path in shipped or path in dirs:
                continue
            (stale_dirs if typ & 0x4000 else stale).append(path)
    stale_sizes = {}
    if stale:
        for p, s in zip(
            stale,
            board.query(
                "import os\nr=[]\nfor p in %r:\n try:\n  r.append(os.stat(p)[6])\n"
                " except OSError:\n  r.append(0)\nprint(repr(r))" % stale
            ),
        ):
            stale_sizes[p] = s

    # Space: every file rounded up to whole blocks, new folders, a small reserve; less
    # what the files replaced and removed give back.
    need = (
        sum(_blocks(it.size, bsize) for it in items) + DIR_BLOCKS * len(new_dirs) + RESERVE_BLOCKS
    )
    freed = sum(_blocks(st[it.dest][1], bsize) for it in items if st.get(it.dest))
    freed += sum(_blocks(s, bsize) for s in stale_sizes.values())
    net = (need - freed) * bsize
    if net > free and not args.force:
        raise NoSpace(
            "not enough flash on the board: this deploy needs %s (%d bytes: %d files rounded "
            "up to %d-byte blocks, %d new folders, %d blocks spare, less %s the files it "
            "replaces free), the filesystem has %s free of %s. Nothing was copied. Make room "
            "(mpremote connect %s fs ls : ; fs rm :FILE), or try with --force (small files "
            "may fit in littlefs metadata, which this estimate does not count)."
            % (
                _human(net),
                net,
                len(items),
                bsize,
                len(new_dirs),
                RESERVE_BLOCKS,
                _human(freed * bsize),
                _human(free),
                _human(total_fs),
                board.port,
            )
        )
    out(
        "flash: %s free of %s; this deploy needs %s"
        % (_human(free), _human(total_fs), _human(max(net, 0)))
    )

    if st.get(shadow) and st[shadow][0] & 0x4000 and shadow not in dirs:
        out(
            "WARNING: the board has %s, which shadows %s/umqtt_paho (the current folder "
            "comes first on sys.path): remove it with  mpremote connect %s rm -r :umqtt_paho"
            % (shadow, "/" + args.lib_dir.strip("/"), board.port)
        )

    for d in new_dirs:
        board.mkdir(d)
    if stale:
        out("removing stale files: " + ", ".join(stale))
        board.run(_REMOVE % (stale,))
    for d in stale_dirs:
        out("WARNING: left alone: unexpected folder %s on the board" % d)

    total = sum(it.size for it in items)
    progress = Progress(len(items), total, progress_stream)
    for it in items:
        with open(it.src, "rb") as f:
            data = f.read()
        progress.start(it)
        written = [0]

        def cb(n, size, written=written):
            written[0] = n
            progress.update(n, size)

        try:
            board.write_file(it.dest, data, cb)
        except NoSpace:
            if progress.tty:
                progress.stream.write("\n")
            raise NoSpace(
                "the board ran out of flash while writing %s (%d of %d bytes sent; the "
                "partial file was removed): it reported %s free before copying, this "
                "deploy needs about %s. Make room (mpremote connect %s fs ls : ; fs rm :FILE) "
                "and deploy again."
                % (it.dest, written[0], it.size, _human(free), _human(max(net, 0)), board.port)
            )
        progress.end()
    progress.finish()

    verify_files(board, items, out)
