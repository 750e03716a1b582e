"""The command line: the arguments, and main(), which plans, opens the port, deploys
and turns every failure into a message and an exit status."""

import argparse
import os
import sys

from .base import EXIT_OK, EXIT_OTHER, EXIT_USAGE, REPO, DeployError
from .flash import deploy
from .plan import describe, load_build, plan
from .transport import Board, resolve_port


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="tools/deploy.py",
        description="Build umqtt_paho for a board and copy it with the board's files "
        "over USB serial.",
        epilog="exit status: 0 ok, 2 usage, 3 board not found / not answering, "
        "4 out of flash, 1 other",
    )
    ap.add_argument(
        "--board", required=True, help="a folder of boards/ (e.g. esp32_devkitc, pico_w)"
    )
    ap.add_argument(
        "--port",
        default="auto",
        help="serial port, e.g. /dev/ttyUSB0 or COM3; auto (default): the one USB serial port",
    )
    ap.add_argument(
        "--dry-run", action="store_true", help="list what would be copied; open no port"
    )
    ap.add_argument("--no-main", action="store_true", help="do not copy main.py")
    ap.add_argument(
        "--no-build",
        action="store_true",
        help="use the existing build/<board>/ instead of building",
    )
    ap.add_argument(
        "--reset", action="store_true", help="soft-reset the board afterwards, so main.py runs"
    )
    ap.add_argument(
        "--force",
        action="store_true",
        help="copy even if the board's platform or .mpy format does not match, or the "
        "free-space estimate says it will not fit",
    )
    ap.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the raw REPL (default 10)"
    )
    ap.add_argument(
        "--lib-dir",
        default=None,
        help="folder on the board for umqtt_paho/ (default: board.json's lib_dir, else /lib)",
    )
    ap.add_argument(
        "--build-dir",
        default=os.path.join(REPO, "build"),
        help="build output folder (default build/)",
    )
    ap.add_argument(
        "--boards-dir",
        default=os.path.join(REPO, "boards"),
        help="board folders (default boards/)",
    )
    args = ap.parse_args(argv)
    if args.timeout <= 0:
        ap.error("--timeout must be positive")
    args.build_dir = os.path.abspath(args.build_dir)
    args.boards_dir = os.path.abspath(args.boards_dir)
    return args


def main(argv=None, progress_stream=None):
    try:
        args = parse_args(argv)
    except SystemExit as e:  # argparse: usage error (2) or --help (0)
        return e.code if isinstance(e.code, int) else EXIT_USAGE

    def out(msg):
        print(msg)
        sys.stdout.flush()

    board = None
    try:
        bmod = load_build()
        build, folder, items, dirs, skipped = plan(args, bmod, out)
        if not items:
            raise DeployError(EXIT_OTHER, "nothing to copy")
        if args.dry_run:
            out("dry run: would copy to %s (no port opened):" % args.port)
            describe(args, build, folder, items, dirs, skipped, bmod, out)
            return EXIT_OK
        describe(args, build, folder, items, dirs, skipped, bmod, out)
        port = resolve_port(args.port)
        out("connecting to %s ..." % port)
        board = Board(port, args.timeout, out)
        deploy(args, bmod, board, build, items, dirs, out, progress_stream)
        if args.reset:
            board.soft_reset()
            out("soft reset: the board now runs main.py")
        else:
            out("done. Reset the board (or press Ctrl-D in its REPL) to run main.py.")
        return EXIT_OK
    except DeployError as e:
        sys.stdout.flush()
        print("tools/deploy.py: error: %s" % e.message, file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("tools/deploy.py: interrupted", file=sys.stderr)
        return EXIT_OTHER
    finally:
        if board is not None:
            board.close()
