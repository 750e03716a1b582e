"""A pseudo-terminal peer that speaks MicroPython's raw REPL: NOT a board.

tools/deploy.py talks to boards through mpremote over a serial port. No board exists
where the tests run, so this module opens a pty pair (os.openpty) and answers on the
master side what MicroPython 1.29's shared/runtime/pyexec.c answers, byte for byte, for
the parts mpremote 1.29.0 (mpremote/transport_serial.py) uses:

- friendly REPL: Ctrl-A -> "\\r\\n" + raw REPL; Ctrl-B -> banner; Ctrl-C -> "\\r\\n>>> ";
  Ctrl-D -> soft reboot; other bytes are echoed (nothing is executed there).
- optionally a running main.py, printing a line every 0.2 s until Ctrl-C (then the
  KeyboardInterrupt traceback and the friendly REPL), as a deployed board would be.
- raw REPL: "raw REPL; CTRL-B to exit\\r\\n>"; bytes accumulate until Ctrl-D, then
  "OK", then the code's stdout, "\\x04", its traceback (MicroPython's format, e.g.
  "OSError: [Errno 28] ENOSPC"), "\\x04", ">". Ctrl-D on an empty line: "OK\\r\\n",
  "MPY: soft reboot\\r\\n", fresh globals, the raw REPL banner again. Ctrl-C clears the
  line; Ctrl-A redraws the banner; Ctrl-B goes back to the friendly REPL.
- raw-paste mode (what mpremote uses for every exec): "\\x05A\\x01" -> "R\\x01", the
  window increment as 2 bytes little-endian (128: half of MICROPY_REPL_STDIN_BUFFER_MAX
  256) and a first "\\x01"; then one "\\x01" after each 128 bytes consumed; Ctrl-D ends
  the data and is acknowledged with "\\x04"; then stdout "\\x04" traceback "\\x04" ">".
  With raw_paste=False the peer is an old firmware without it: "\\x05A" then Ctrl-A is
  a plain Ctrl-A (banner again), and mpremote falls back to the "OK" protocol.

The received code is run with exec() in globals that persist until a soft reboot (as on
the board: mpremote's `f=open(...)` in one exec and `w(...)` in the next rely on it).
Its `open`, `os` / `uos`, `sys`, `print` are replaced: paths are resolved against a
simulated flash, a temporary folder (the board's "/"), and never escape it; `sys`
reports a MicroPython on the chosen platform. This is a convenience sandbox for our
own test code, not a security boundary.

The simulated flash counts space the way littlefs roughly does: a file takes its size
rounded up to whole blocks, a folder a metadata pair (2 blocks); os.statvfs('/')
reports the rest, and a write that needs more blocks than are free raises
OSError(ENOSPC). fail_writes_after=N makes writes fail with ENOSPC once N bytes have
been written in total although statvfs says there is room (a filesystem that
overstates its free space, or something else filling it).

sys.implementation._mpy reports .mpy v6.3 and the platform's native arch (esp32:
xtensawin, rp2040: armv6m, rp2350: armv7emsp); mpy_version=5 makes it an older firmware.

Modes: "micropython" (the above), "silent" (reads and never answers: a port with
nothing behind it, a board held in reset), "foreign" (a device that talks but is not
MicroPython: prints sensor lines every 0.1 s and ignores control characters).

Usage:
    with RawReplPeer(flash_size=1 << 20) as peer:
        run_something(port=peer.port)
        peer.files()  # {"/lib/x.mpy": b"...", ...}
The peer runs in a daemon thread; leaving the with-block stops it, closes both ends of
the pty and removes the flash folder if the peer created it.
"""

import binascii
import builtins
import errno
import hashlib
import os
import posixpath
import select
import shutil
import struct
import tempfile
import threading
import time
import traceback
import tty
import types

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
PASTE_WINDOW = 128  # MICROPY_REPL_STDIN_BUFFER_MAX (256) / 2, as pyexec.c computes it

# name, sys.platform, machine, native arch (MP_NATIVE_ARCH_*)
PLATFORMS = {
    "esp32": ("esp32", "Generic ESP32 module with ESP32", 10),
    "esp32s3": ("esp32", "Generic ESP32S3 module with ESP32S3", 10),
    "rp2040": ("rp2", "Raspberry Pi Pico W with RP2040", 4),
    "rp2350": ("rp2", "Raspberry Pi Pico 2 W with RP2350", 7),
}
MP_VERSION = (1, 29, 0)
MPY_VERSION, MPY_SUB_VERSION = 6, 3

S_IFDIR, S_IFREG = 0x4000, 0x8000


def _oserror(code):
    # MicroPython's OSError: str() is "[Errno 28] ENOSPC", which mpremote parses.
    return OSError(code, errno.errorcode.get(code, str(code)))


class FlashFS:
    """The board's filesystem: a host folder standing for "/", with block accounting."""

    def __init__(self, root, size, block_size=4096, fail_writes_after=None):
        self.root = root
        self.block_size = block_size
        self.total_blocks = size // block_size
        self.fail_writes_after = fail_writes_after
        self.bytes_written = 0
        self.cwd = "/"

    # paths
    def devpath(self, path):
        if not isinstance(path, str):
            raise TypeError("can't convert %s to str" % type(path).__name__)
        return posixpath.normpath(posixpath.join(self.cwd, path)).replace("//", "/")

    def host(self, path):
        dev = self.devpath(path)  # normpath of an absolute path never climbs above "/"
        return os.path.join(self.root, *[p for p in dev.split("/") if p])

    # space
    def _blocks(self, n):
        return (n + self.block_size - 1) // self.block_size

    def used_blocks(self):
        used = 2  # the root folder's metadata pair
        for dirpath, dirnames, filenames in os.walk(self.root):
            used += 2 * len(dirnames)
            for fn in filenames:
                used += self._blocks(os.path.getsize(os.path.join(dirpath, fn)))
        return used

    def free_blocks(self):
        return max(0, self.total_blocks - self.used_blocks())

    def charge(self, old_size, new_size, nbytes):
        """Raise ENOSPC if growing a file from old_size to new_size does not fit."""
        if (
            self.fail_writes_after is not None
            and self.bytes_written + nbytes > self.fail_writes_after
        ):
            raise _oserror(errno.ENOSPC)
        if self._blocks(new_size) - self._blocks(old_size) > self.free_blocks():
            raise _oserror(errno.ENOSPC)
        self.bytes_written += nbytes

    # the os module
    def _wrap(self, fn, *args):
        try:
            return fn(*args)
        except OSError as e:
            if e.errno is None:
                raise
            raise _oserror(e.errno) from None

    def stat(self, path):
        st = self._wrap(os.stat, self.host(path))
        mode = S_IFDIR if os.path.isdir(self.host(path)) else S_IFREG
        t = int(st.st_mtime)
        return (mode, 0, 0, 0, 0, 0, st.st_size if mode == S_IFREG else 0, t, t, t)

    def statvfs(self, path="/"):
        self.stat(path)
        free = self.free_blocks()
        bs = self.block_size
        return (bs, bs, self.total_blocks, free, free, 0, 0, 0, 0, 255)

    def ilistdir(self, path=""):
        host = self.host(path or self.cwd)
        names = sorted(self._wrap(os.listdir, host))
        out = []
        for n in names:
            p = os.path.join(host, n)
            isdir = os.path.isdir(p)
            out.append((n, S_IFDIR if isdir else S_IFREG, 0, 0 if isdir else os.path.getsize(p)))
        return iter(out)

    def listdir(self, path=""):
        return [e[0] for e in self.ilistdir(path)]

    def mkdir(self, path):
        host = self.host(path)
        if os.path.exists(host):
            raise _oserror(errno.EEXIST)
        if self.free_blocks() < 2:
            raise _oserror(errno.ENOSPC)
        self._wrap(os.mkdir, host)

    def rmdir(self, path):
        self._wrap(os.rmdir, self.host(path))

    def remove(self, path):
        host = self.host(path)
        if os.path.isdir(host):
            raise _oserror(errno.EISDIR)
        self._wrap(os.remove, host)

    def rename(self, old, new):
        self._wrap(os.rename, self.host(old), self.host(new))

    def chdir(self, path):
        dev = self.devpath(path)
        if not os.path.isdir(self.host(dev)):
            raise _oserror(errno.ENOENT)
        self.cwd = dev

    def getcwd(self):
        return self.cwd

    def open(self, path, mode="r"):
        host = self.host(path)
        if os.path.isdir(host):
            raise _oserror(errno.EISDIR)
        return FlashFile(self, host, mode)

    def module(self):
        m = types.ModuleType("os")
        for name in (
            "stat",
            "statvfs",
            "ilistdir",
            "listdir",
            "mkdir",
            "rmdir",
            "remove",
            "rename",
            "chdir",
            "getcwd",
        ):
            setattr(m, name, getattr(self, name))
        m.unlink = self.remove
        m.sync = lambda: None
        m.sep = "/"
        m.uname = lambda: types.SimpleNamespace(
            sysname="peer", nodename="peer", release="1.29.0", version="peer", machine="peer"
        )
        return m


class FlashFile:
    """A file on the simulated flash; writes are charged against its free blocks."""

    def __init__(self, fs, host, mode):
        self.fs = fs
        self.binary = "b" in mode
        if "r" in mode and not os.path.exists(host):
            raise _oserror(errno.ENOENT)
        if ("w" in mode or "a" in mode) and not os.path.isdir(os.path.dirname(host)):
            raise _oserror(errno.ENOENT)
        raw_mode = mode.replace("t", "")
        if not self.binary:
            raw_mode += "b"
        self.f = fs._wrap(open, host, raw_mode, 0)

    def write(self, data):
        if isinstance(data, str):
            if self.binary:
                raise TypeError("object with buffer protocol required")
            data = data.encode("utf-8")
        data = bytes(data)
        pos = self.f.tell()
        old = os.fstat(self.f.fileno()).st_size
        self.fs.charge(old, max(old, pos + len(data)), len(data))
        return self.f.write(data)

    def read(self, n=-1):
        data = self.f.read(n)
        return data if self.binary else data.decode("utf-8")

    def readinto(self, buf):
        return self.f.readinto(buf)

    def readline(self):
        line = self.f.readline()
        return line if self.binary else line.decode("utf-8")

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def seek(self, off, whence=0):
        return self.f.seek(off, whence)

    def tell(self):
        return self.f.tell()

    def flush(self):
        pass

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RawReplPeer:
    """A pty whose far end answers like MicroPython's REPL (see the module docstring).

    port: the slave's path (/dev/pts/N), to give to mpremote / tools/deploy.py.
    """

    def __init__(
        self,
        flash_dir=None,
        flash_size=2 * 1024 * 1024,
        block_size=4096,
        mode="micropython",
        raw_paste=True,
        platform="esp32",
        running_main=False,
        fail_writes_after=None,
        mpy_version=MPY_VERSION,
    ):
        if mode not in ("micropython", "silent", "foreign"):
            raise ValueError("mode: micropython, silent or foreign")
        self._own_dir = flash_dir is None
        self.flash_dir = flash_dir or tempfile.mkdtemp(prefix="flash-")
        self.fs = FlashFS(self.flash_dir, flash_size, block_size, fail_writes_after)
        self.mode = mode
        self.raw_paste = raw_paste
        self.sys_platform, self.machine, self.arch = PLATFORMS[platform]
        self.program_running = running_main
        self.mpy_version = mpy_version  # .mpy format the "firmware" loads (6 since 1.19)
        self.executed = []  # every code snippet run, in order (for assertions)
        self.received = bytearray()  # every byte from the host
        self.soft_reboots = 0
        self.peer_errors = []  # exceptions in the peer itself (bugs), for debugging
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = None
        self._ns = None
        self._reset_globals()
        self._proto = self._protocol()
        next(self._proto)

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self._thread = threading.Thread(target=self._serve, name="raw-repl-peer", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = -1
        if self._own_dir:
            shutil.rmtree(self.flash_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait(self, condition, timeout=3.0):
        """Wait until condition(self) is true (the peer reads in its own thread: what
        the host wrote last may not be handled yet when the host returns)."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # ------------------------------------------------------------ flash helpers
    def files(self):
        """{board path: contents} of every file on the simulated flash."""
        out = {}
        for dirpath, _, filenames in os.walk(self.flash_dir):
            for fn in filenames:
                host = os.path.join(dirpath, fn)
                rel = os.path.relpath(host, self.flash_dir).replace(os.sep, "/")
                with open(host, "rb") as f:
                    out["/" + rel] = f.read()
        return out

    def put(self, path, data):
        """Put a file on the flash directly (the state a board is in before a test)."""
        host = self.fs.host(path)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "wb") as f:
            f.write(data)

    # ------------------------------------------------------------ I/O
    def _out(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        while data:
            try:
                n = os.write(self._master, data)
            except OSError:
                return
            data = data[n:]

    def _serve(self):
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.02)
            except (OSError, ValueError):
                return
            now = time.monotonic()
            if self.mode == "foreign" and now >= next_tick:
                self._out(b"T=21.5C H=40%% t=%d\r\n" % int(now * 10))
                next_tick = now + 0.1
            elif self.mode == "micropython" and self.program_running and now >= next_tick:
                self._out(b"main.py: publishing sensor reading\r\n")
                next_tick = now + 0.2
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            if not data:
                return
            self.received += data
            if self.mode != "micropython":
                continue  # silent, or a foreign device that ignores us
            for c in data:
                try:
                    self._proto.send(c)
                except StopIteration:
                    return
                except Exception:  # a bug in the peer: record it, keep serving
                    self.peer_errors.append(traceback.format_exc())
                    self._proto = self._protocol()
                    next(self._proto)

    # ------------------------------------------------------------ the REPL, as pyexec.c
    def _banner(self):
        return (
            'MicroPython v%d.%d.%d on 2026-01-01; %s\r\nType "help()" for more information.\r\n'
            % (MP_VERSION + (self.machine,))
        )

    def _protocol(self):
        # A generator fed one received byte per send(): the state machine of
        # pyexec_friendly_repl / pyexec_raw_repl.
        while True:
            c = yield
            if self.program_running:
                if c == CTRL_C:
                    self.program_running = False
                    self._out(
                        'Traceback (most recent call last):\r\n  File "main.py", line 30, in '
                        "<module>\r\nKeyboardInterrupt: \r\n" + self._banner() + ">>> "
                    )
                continue
            if c == CTRL_A:
                self._out(b"\r\n")
                yield from self._raw_repl()
            elif c == CTRL_B:
                self._out("\r\n" + self._banner() + ">>> ")
            elif c == CTRL_C:
                self._out(b"\r\n>>> ")
            elif c == CTRL_D:
                self._out(b"\r\n")
                self._soft_reboot()
                self._out(self._banner() + ">>> ")
            elif c == 13:
                self._out(b"\r\n>>> ")
            else:
                self._out(bytes([c]))  # echo (the friendly REPL executes nothing here)

    def _raw_repl(self):
        self._out(RAW_BANNER + b">")
        line = bytearray()
        while True:
            c = yield
            if c == CTRL_A:
                if self.raw_paste and len(line) == 2 and line[0] == CTRL_E:
                    if line[1] == ord("A"):
                        yield from self._raw_paste()
                    else:
                        self._out(b"R\x00")
                    line = bytearray()
                    self._out(b">")
                    continue
                line = bytearray()
                self._out(RAW_BANNER + b">")
            elif c == CTRL_B:
                self._out("\r\n" + self._banner() + ">>> ")
                return
            elif c == CTRL_C:
                line = bytearray()
            elif c == CTRL_D:
                self._out(b"OK")
                if not line:
                    self._out(b"\r\n")
                    self._soft_reboot()
                    self._out(RAW_BANNER + b">")  # main.py does not run from the raw REPL
                    continue
                self._execute(bytes(line))
                line = bytearray()
                self._out(b">")
            else:
                line.append(c)

    def _raw_paste(self):
        self._out(b"R\x01" + struct.pack("<H", PASTE_WINDOW) + b"\x01")
        code = bytearray()
        remain = PASTE_WINDOW
        while True:
            c = yield
            if c in (CTRL_C, CTRL_D):
                self._out(b"\x04")  # end of data acknowledged
                break
            code.append(c)
            remain -= 1
            if remain == 0:
                self._out(b"\x01")  # another window is free
                remain = PASTE_WINDOW
        if c == CTRL_C:
            self._out(b"\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04")
            return
        self._execute(bytes(code))

    def _soft_reboot(self):
        self.soft_reboots += 1
        self._out(b"MPY: soft reboot\r\n")
        self.fs.cwd = "/"
        self._reset_globals()

    # ------------------------------------------------------------ running code
    def _reset_globals(self):
        self._ns = {"__name__": "__main__", "__builtins__": self._builtins()}

    def _builtins(self):
        peer = self
        b = dict(vars(builtins))
        os_mod = self.fs.module()
        sys_mod = types.ModuleType("sys")
        sys_mod.platform = self.sys_platform
        sys_mod.implementation = types.SimpleNamespace(
            name="micropython",
            version=MP_VERSION + ("",),
            _machine=self.machine,
            _mpy=self.mpy_version | (MPY_SUB_VERSION << 8) | (self.arch << 10),
        )
        sys_mod.version = "3.4.0; MicroPython v%d.%d.%d" % MP_VERSION
        sys_mod.byteorder = "little"
        sys_mod.maxsize = 2**31 - 1
        sys_mod.path = ["", ".frozen", "/lib"]
        sys_mod.stdout = types.SimpleNamespace(write=lambda s: peer._stdout.append(str(s)))
        micropython = types.ModuleType("micropython")
        micropython.const = lambda x: x
        micropython.kbd_intr = lambda c: None
        gc = types.ModuleType("gc")
        gc.collect = lambda: None
        gc.mem_free = lambda: 100000
        gc.mem_alloc = lambda: 20000
        modules = {
            "os": os_mod,
            "uos": os_mod,
            "sys": sys_mod,
            "micropython": micropython,
            "gc": gc,
            "time": time,
            "hashlib": hashlib,
            "binascii": binascii,
            "struct": struct,
            "errno": errno,
        }

        def _import(name, globals=None, locals=None, fromlist=(), level=0):
            if name in modules:
                return modules[name]
            raise ImportError("no module named '%s'" % name)

        def _print(*args, sep=" ", end="\n", file=None):
            peer._stdout.append(sep.join(str(a) for a in args) + end)

        b["__import__"] = _import
        b["print"] = _print
        b["open"] = self.fs.open
        return b

    def _execute(self, code):
        """Run code as the board would; send stdout, \\x04, traceback, \\x04."""
        self._stdout = []
        err = ""
        try:
            src = code.decode("utf-8")
            self.executed.append(src)
            compiled = compile(src, "<stdin>", "exec")
            exec(compiled, self._ns)
        except SyntaxError as e:
            err = (
                'Traceback (most recent call last):\n  File "<stdin>", line %s\n'
                "SyntaxError: invalid syntax\n" % (e.lineno or 1)
            )
        except Exception as e:
            lines = [
                fr.lineno
                for fr in traceback.extract_tb(e.__traceback__)
                if fr.filename == "<stdin>"
            ]
            msg = str(e)
            # MicroPython has one OSError type (CPython picks a subclass by errno).
            name = "OSError" if isinstance(e, OSError) else type(e).__name__
            err = (
                'Traceback (most recent call last):\n  File "<stdin>", line %d, in <module>\n'
                "%s%s\n" % (lines[-1] if lines else 1, name, ": " + msg if msg else "")
            )
        out = "".join(self._stdout)
        # The board's stdout turns "\n" into "\r\n".
        self._out(
            out.replace("\n", "\r\n").encode("utf-8")
            + b"\x04"
            + err.replace("\n", "\r\n").encode("utf-8")
            + b"\x04"
        )
