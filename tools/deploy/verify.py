"""Checks against the board: before copying, that it runs MicroPython on the platform
and .mpy format the build is for; after copying, that every file arrived whole (size,
and SHA-256 where the firmware has hashlib)."""

import hashlib

from .base import EXIT_NO_BOARD, EXIT_OTHER, DeployError, _rel
from .plan import _ARCH_NAMES, mpy_header

# sys.platform of the firmware a build board's port modules are for.
_PORT_PLATFORM = {"esp32": "esp32", "rp2": "rp2"}

_VERIFY = """\
import os
try:
 import hashlib,binascii
 _H=hashlib.sha256
except (ImportError,AttributeError):
 _H=None
def _v(p):
 n=os.stat(p)[6]
 if _H is None:
  return (n,None)
 h=_H()
 b=bytearray(256)
 m=memoryview(b)
 with open(p,'rb') as f:
  while 1:
   k=f.readinto(b)
   if not k:
    break
   h.update(m[:k])
 return (n,binascii.hexlify(h.digest()).decode())
print(repr([_v(p) for p in %r]))
"""


def _check_device(info, build, items, bmod, port, args):
    statvfs, impl, version, mpy, platform, machine = info[:6]
    what = "%s %s on %s%s" % (
        impl,
        ".".join(str(v) for v in version),
        platform,
        " (%s)" % machine if machine else "",
    )
    if impl != "micropython":
        raise DeployError(
            EXIT_NO_BOARD,
            "the device on %s runs %s, not MicroPython: --board %s needs MicroPython "
            "firmware" % (port, what, args.board),
        )
    if args.force:
        return what
    want = None
    for p in bmod.BOARDS[build][1]:
        want = _PORT_PLATFORM.get(p, want)
    if want and platform != want:
        raise DeployError(
            EXIT_NO_BOARD,
            "the board on %s is %s, but --board %s is built for sys.platform %r: wrong "
            "port or wrong --board? (--force copies anyway)" % (port, what, args.board, want),
        )
    if isinstance(mpy, int):
        dev_ver, dev_sub, dev_arch = mpy & 0xFF, (mpy >> 8) & 3, mpy >> 10
        for it in items:
            if not it.dest.endswith(".mpy"):
                continue
            hdr = mpy_header(it.src)
            if not hdr:
                continue
            ver, sub, arch = hdr
            # py/persistentcode.h: bytecode-only .mpy loads wherever MPY_VERSION
            # matches; native code also needs the sub-version, and an arch the core
            # runs (Thumb code for the same or an older Thumb core; else exact).
            ok = ver == dev_ver
            if ok and arch:
                ok = sub == dev_sub
                if 4 <= dev_arch <= 8:
                    ok = ok and 4 <= arch <= dev_arch
                else:
                    ok = ok and arch == dev_arch
            if not ok:
                raise DeployError(
                    EXIT_NO_BOARD,
                    "the board on %s (%s) loads .mpy v%d.%d%s; %s is v%d.%d%s: it would not "
                    "import. Update the firmware to MicroPython %s, or check --board."
                    % (
                        port,
                        what,
                        dev_ver,
                        dev_sub,
                        " " + _ARCH_NAMES[dev_arch] if dev_arch < len(_ARCH_NAMES) else "",
                        _rel(it.src),
                        ver,
                        sub,
                        " " + _ARCH_NAMES[arch] if arch else "",
                        getattr(bmod, "MICROPYTHON_VERSION", "1.29"),
                    ),
                )
    return what


def verify_files(board, items, out=print):
    """Check what arrived: each file's size, and its SHA-256 where the board has hashlib."""
    got = board.query(_VERIFY % ([it.dest for it in items],))
    bad = []
    for it, (size, digest) in zip(items, got):
        with open(it.src, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        if size != it.size or (digest is not None and digest != want):
            bad.append(
                "%s: %d bytes on the board, %d here%s"
                % (it.dest, size, it.size, "" if size != it.size else ", contents differ")
            )
    if bad:
        raise DeployError(EXIT_OTHER, "verification failed:\n  " + "\n  ".join(bad))
    hashed = all(d is not None for _, d in got)
    out(
        "verified %d files on the board (%s)"
        % (len(items), "size and SHA-256" if hashed else "size")
    )
