"""The serial link: finding the board's port (--port auto), and Board, a MicroPython
board in its raw REPL through mpremote's SerialTransport, with a deadline on every
wait and the board's failures sorted into exit statuses."""

import ast
import contextlib
import errno
import io
import os
import sys
import time

from .base import EXIT_NO_BOARD, EXIT_OTHER, EXIT_USAGE, DeployError, NoSpace

MPREMOTE_PIN = "1.29.0"  # the version setup.cfg pins; its SerialTransport API is used

# Known USB vendor ids of MicroPython boards and their USB-serial bridges, preferred
# by --port auto when several USB serial ports are present.
_KNOWN_VIDS = {
    0x303A: "Espressif",
    0x10C4: "Silicon Labs CP210x",
    0x1A86: "WCH CH340/CH9102",
    0x0403: "FTDI",
    0x2E8A: "Raspberry Pi",
    0xF055: "MicroPython",
    0x239A: "Adafruit",
}

CHUNK = 256  # bytes per raw-REPL write (mpremote's default: fits every port's stdin buffer)


def list_serial_ports():
    """[(device, description)] of the serial ports this machine has (sorted)."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    ports = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        desc = p.description if p.description and p.description != "n/a" else ""
        if p.vid is not None:
            desc = (
                "%s [%04x:%04x%s]"
                % (
                    desc,
                    p.vid,
                    p.pid or 0,
                    " " + _KNOWN_VIDS[p.vid] if p.vid in _KNOWN_VIDS else "",
                )
            ).strip()
        ports.append((p.device, desc, p.vid, p.pid))
    return ports


def _ports_text(ports):
    if not ports:
        return (
            "serial ports seen on this machine: none (is the board plugged in, with a data cable?)"
        )
    return "serial ports seen on this machine:\n" + "\n".join(
        "  %s%s" % (dev, "  " + desc if desc else "") for dev, desc, _, _ in ports
    )


def resolve_port(port):
    """The device path to open; raises DeployError(3) when there is no such board."""
    if port and port != "auto":
        if port.startswith("port:"):
            port = port[5:]
        looks_like_path = port.startswith("/") or port.startswith("." + os.sep)
        if looks_like_path and not os.path.exists(port):
            raise DeployError(
                EXIT_NO_BOARD,
                "no board: port %s does not exist.\n%s" % (port, _ports_text(list_serial_ports())),
            )
        return port
    ports = list_serial_ports()
    usb = [p for p in ports if p[2] is not None]
    if not usb:
        raise DeployError(
            EXIT_NO_BOARD,
            "no board found: no USB serial port (--port auto).\n%s" % _ports_text(ports),
        )
    known = [p for p in usb if p[2] in _KNOWN_VIDS]
    candidates = known or usb
    if len(candidates) > 1:
        raise DeployError(
            EXIT_USAGE,
            "several USB serial ports: pass --port one of them.\n%s" % _ports_text(candidates),
        )
    return candidates[0][0]


_CLEANUP = """\
try:
 f.close()
except Exception:
 pass
import os
try:
 os.remove(%r)
except OSError:
 pass
"""


def _import_mpremote():
    try:
        import mpremote
        from mpremote.transport import TransportError, TransportExecError
        from mpremote.transport_serial import SerialTransport
    except ImportError as e:
        raise DeployError(
            EXIT_OTHER,
            "mpremote is not installed (%s): %s -m pip install mpremote==%s "
            "(or pip install -e .[test])" % (e, sys.executable, MPREMOTE_PIN),
        )
    version = getattr(mpremote, "__version__", "?")
    return SerialTransport, TransportError, TransportExecError, version


def _is_enospc(exc):
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(getattr(exc, "error_output", "") or "")
    return "ENOSPC" in text or "[Errno 28]" in text


class _PastDeadline(Exception):
    pass


class _DeadlinePort:
    """The pyserial port mpremote reads, with a deadline for all reads together."""

    def __init__(self, port, seconds):
        self.port = port
        self.deadline = time.monotonic() + seconds
        self.heard = bytearray()

    def _check(self):
        if time.monotonic() > self.deadline:
            raise _PastDeadline()

    def read(self, n=1):
        self._check()
        data = self.port.read(n)
        self.heard += data
        return data

    def inWaiting(self):
        self._check()
        return self.port.inWaiting()

    def write(self, data):
        return self.port.write(data)

    def __getattr__(self, name):
        return getattr(self.port, name)


class Board:
    """A MicroPython board in its raw REPL, through mpremote's SerialTransport."""

    def __init__(self, port, timeout, out=print):
        self.port = port
        self.out = out
        ST, self.TransportError, self.TransportExecError, version = _import_mpremote()
        if version != MPREMOTE_PIN:
            out(
                "note: mpremote %s installed; this tool was checked with %s"
                % (version, MPREMOTE_PIN)
            )
        # pyserial's read timeout bounds every wait of mpremote on a silent device (with
        # timeout=None a pty or a silent port blocks forever).
        try:
            self.t = ST(port, baudrate=115200, timeout=max(0.2, min(1.0, timeout)))
        except self.TransportError as e:
            raise DeployError(EXIT_NO_BOARD, self._open_error(port, e))
        try:
            self._enter_raw_repl(timeout)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _open_error(port, e):
        why = "it may be in use by another program (a serial terminal, Thonny, another mpremote)"
        if os.path.exists(port) and not os.access(port, os.R_OK | os.W_OK):
            why = (
                "no permission: add yourself to the group that owns it (often dialout) "
                "and log in again"
            )
        return "no board: cannot open %s: %s; %s.\n%s" % (
            port,
            e,
            why,
            _ports_text(list_serial_ports()),
        )

    def _enter_raw_repl(self, timeout):
        # Ctrl-C (stop main.py), Ctrl-A (raw REPL), Ctrl-D (soft reset: frees RAM, ends
        # the client's threads; main.py does not run again in the raw REPL).
        # mpremote's read_until checks its overall timeout only while no byte arrives,
        # so a device that never stops talking would keep it waiting forever: the port
        # is wrapped in a proxy that gives up at a deadline, and records what it heard.
        said = b""
        for attempt in (1, 2):
            proxy = _DeadlinePort(self.t.serial, timeout)
            self.t.serial = proxy
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # mpremote print()s what it got
                    self.t.enter_raw_repl(soft_reset=True, timeout_overall=timeout)
                return
            except (self.TransportError, _PastDeadline):
                said += bytes(proxy.heard)
            except OSError as e:  # pyserial: the port went away
                raise DeployError(EXIT_NO_BOARD, "no board: %s failed: %s" % (self.port, e))
            finally:
                self.t.serial = proxy.port
            if not said.strip():
                break  # silent: a second try would only double the wait
        if not said.strip():
            raise DeployError(
                EXIT_NO_BOARD,
                "no answer from %s within %.1f s: the device did not enter MicroPython's raw "
                "REPL (Ctrl-C, Ctrl-A). Is it the board's port (not another serial device), "
                "running MicroPython, and not stuck in boot.py?\n%s"
                % (self.port, timeout, _ports_text(list_serial_ports())),
            )
        sample = said[-240:].decode("utf-8", "replace")
        raise DeployError(
            EXIT_NO_BOARD,
            "the device on %s answers, but not as MicroPython's raw REPL (no \"raw REPL; "
            'CTRL-B to exit" within %.1f s, tried twice): wrong port, or other firmware '
            "(CircuitPython running code.py, Arduino, a GPS...)? The last it said:\n  %r"
            % (self.port, timeout, sample),
        )

    def _call(self, what, fn, *a, **kw):
        """fn(*a, **kw) through mpremote, its failures sorted into exit codes."""
        try:
            return fn(*a, **kw)
        except self.TransportExecError as e:  # a traceback from the board
            if _is_enospc(e):
                raise NoSpace("the board's filesystem is full (ENOSPC) %s" % what)
            raise DeployError(
                EXIT_OTHER, "%s failed on the board:\n%s" % (what, e.error_output.strip())
            )
        except self.TransportError as e:  # timeouts, protocol
            raise DeployError(EXIT_NO_BOARD, "the board stopped answering (%s): %s" % (what, e))
        except OSError as e:
            # mpremote turns a board's OSError into a host OSError with its errno;
            # pyserial's SerialException (no errno) is the port itself failing.
            if e.errno == errno.ENOSPC:
                raise NoSpace("the board's filesystem is full (ENOSPC) %s" % what)
            if e.errno is None or type(e).__name__ == "SerialException":
                raise DeployError(
                    EXIT_NO_BOARD,
                    "lost the serial connection to %s (%s): %s" % (self.port, what, e),
                )
            if e.errno == errno.EROFS:
                raise DeployError(
                    EXIT_OTHER, "the board's filesystem is read-only (EROFS) %s" % what
                )
            raise DeployError(EXIT_OTHER, "%s failed on the board: %s" % (what, e))

    def run(self, code):
        """Run code on the board; its stdout as text."""
        return self._call("running a query", self.t.exec, code).decode("utf-8", "replace")

    def query(self, code):
        text = self.run(code).strip()
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise DeployError(EXIT_OTHER, "unexpected answer from the board: %r" % text[:300])

    def mkdir(self, path):
        self._call("creating " + path, self.t.fs_mkdir, path)

    def write_file(self, dest, data, progress):
        try:
            self._call(
                "writing " + dest,
                self.t.fs_writefile,
                dest,
                data,
                chunk_size=CHUNK,
                progress_callback=progress,
            )
        except NoSpace:
            self._cleanup(dest)
            raise

    def _cleanup(self, dest):
        # Close the half-written file and delete it: a truncated .mpy or main.py would
        # fail at boot with a confusing error.
        try:
            self.t.exec(_CLEANUP % dest)
        except Exception:
            pass

    def soft_reset(self):
        # Friendly REPL, then Ctrl-D: the board reboots its VM and runs main.py.
        self.t.exit_raw_repl()
        self.t.serial.write(b"\x04")

    def close(self):
        t, self.t = getattr(self, "t", None), None
        if t is None:
            return
        try:
            if t.in_raw_repl:
                t.exit_raw_repl()
        except Exception:
            pass
        try:
            t.close()
        except Exception:
            pass
