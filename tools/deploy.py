#!/usr/bin/env python3
"""Build umqtt_paho for a board and copy it, with the board's application, over USB serial.

    python3 tools/deploy.py --board NAME [--port /dev/ttyUSB0|auto] [--dry-run]
                            [--no-main] [--no-build] [--reset] [--timeout S]

NAME is a folder of boards/ (esp32_devkitc, esp32s3, pico_w, pico2_w, ...). The tool
1. compiles the library and the board's port modules to .mpy with tools/build.py (into
   build/<build board>/umqtt_paho/; --no-build uses what is there, after checking it is
   complete and not older than the sources);
2. opens the port with mpremote (PyPI, pinned in setup.cfg's [test] extra: the library's
   SerialTransport, its raw REPL and raw-paste protocol; nothing of that is reimplemented
   here), soft-resets the board into the raw REPL (this also stops a running main.py and
   its threads), and checks it runs MicroPython on the platform the build is for;
3. asks the board for its free flash (os.statvfs('/')) and refuses, before writing
   anything, if the files do not fit (each file rounded up to whole flash blocks, a
   conservative estimate: --force skips it);
4. creates /lib, /lib/umqtt_paho, /lib/umqtt_paho/ports as needed, removes files in
   those two package folders that this deploy does not ship (a stale client.py would
   shadow client.mpy), copies the .mpy files, then the board's files (telemetry.py,
   wifi_esp32.py, ..., secrets.py if you created one, main.py last), with a progress
   display;
5. checks every file on the board against the source (size, and SHA-256 where the
   firmware has hashlib).

Which build board: BOARD_TABLE in deploy/boards.py (esp32_devkitc -> esp32, ...); a folder it
does not list is looked up in its board.json ("build_board", or "mpy_arch", or a
MicroPython firmware name such as "RPI_PICO_W"), then in board.py (NAME = "..." lines,
read, never run). A CircuitPython board (feather_esp32s3_cp) is refused with what to do
instead: its firmware cannot load these .mpy files.

Which board files: those board.json lists in "files" (a path such as
../common/telemetry.py, a module several boards share, goes to / under its own name),
plus its "settings" file (secrets.py) if you created one, never its "settings_example";
"entry" (main.py) is the one --no-main leaves out (the board keeps the main.py it has).
Without board.json: the top-level *.py and *.mpy of the folder except manifest.py,
*_example.py and test_*.py.
Either way your own TLS files there (*.der, *.pem, *.crt, *.key: git-ignored) go too.

--dry-run builds (unless --no-build) and lists every file, source -> destination with
its size, and the total, without opening any port.

The library goes to board.json's "lib_dir" (/lib: on sys.path of the esp32 and rp2
ports). A copy at /umqtt_paho would shadow it (the current directory comes first on
sys.path): the tool warns about it.

Checked against a pty peer that speaks the raw REPL (tests/raw_repl_peer.py), not on a
board: see tests/test_deploy.py for what that covers.

This file is the command; the work is in the package tools/deploy/, a module a job:
base.py (exit statuses, the error), boards.py (folder -> build board), plan.py (what to
copy; the dry-run listing), transport.py (serial ports; Board: the raw REPL through
mpremote), verify.py (the device's platform and .mpy format; the files after copying),
progress.py (the display), flash.py (the deploy on the board), cli.py (arguments, main).

Exit status: 0 done; 2 usage (unknown board, a CircuitPython board, several boards and
no --port); 3 no board (the port does not exist, no USB serial port found, the port
cannot be opened) or the device does not answer as MicroPython (no raw REPL: wrong
port, other firmware) or is another platform than the board named; 4 not enough free
flash (found before copying, or ENOSPC from the board while copying); 1 anything else
(mpy-cross missing, compile error, verification failed, a board-side error).
"""

import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/: the package

from deploy import boards, cli, flash, plan, progress, transport, verify  # noqa: E402,F401
from deploy.base import EXIT_OK, EXIT_OTHER, EXIT_USAGE, DeployError, NoSpace  # noqa: E402,F401
from deploy.boards import BOARD_TABLE, board_meta, resolve_board  # noqa: E402,F401
from deploy.cli import main, parse_args  # noqa: E402,F401
from deploy.plan import Item, board_files, describe, load_build  # noqa: E402,F401
from deploy.progress import Progress  # noqa: E402,F401
from deploy.transport import Board, list_serial_ports, resolve_port  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
