# Freezes umqtt_paho into a MicroPython firmware build, with the port modules a board
# needs as umqtt_paho/ports/ (the layout tools/build.py and mip install). A board's
# manifest includes it with its ports:
#
#     include("$(PORT_DIR)/boards/manifest.py")          # what the firmware freezes anyway
#     include("..", ports=("micropython", "esp32"))      # this file (boards/manifest.py)
#
# In this repository the ports live in ports/, not umqtt_paho/ports/, and a manifest
# cannot rename a file, so the files are first copied into a staging folder under the
# repository's build/ (git-ignored), from which the package is frozen. umqtt_paho/
# testing.py and servercodec.py (host tests only) and aiohost.py (CPython only) are
# left out. The firmware build runs this file with the
# manifest's directory as the current directory.

import os
import shutil

options.defaults(ports=())  # noqa: F821  (options, package: given by manifestfile.py)

_repo = os.path.dirname(os.path.abspath("."))  # cwd: boards/ while this file runs
_stage = os.path.join(_repo, "build", "freeze", "-".join(options.ports) or "core")  # noqa: F821
_pkg = os.path.join(_stage, "umqtt_paho")
if os.path.isdir(_stage):
    shutil.rmtree(_stage)  # no stale module from an earlier build
os.makedirs(os.path.join(_pkg, "ports"))
for _name in sorted(os.listdir(os.path.join(_repo, "umqtt_paho"))):
    if _name.endswith(".py") and _name not in ("testing.py", "servercodec.py", "aiohost.py"):
        shutil.copy(os.path.join(_repo, "umqtt_paho", _name), _pkg)
if options.ports:  # noqa: F821
    for _name in ("__init__",) + tuple(options.ports):  # noqa: F821
        shutil.copy(os.path.join(_repo, "ports", _name + ".py"), os.path.join(_pkg, "ports"))
else:
    os.rmdir(os.path.join(_pkg, "ports"))
package("umqtt_paho", base_path=_stage)  # noqa: F821
