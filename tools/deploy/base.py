"""What every part of tools/deploy.py shares: where the repository is, the exit
statuses, the error that carries one, and how paths and sizes are shown."""

import os

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REPO = os.path.dirname(TOOLS)

EXIT_OK, EXIT_OTHER, EXIT_USAGE, EXIT_NO_BOARD, EXIT_NO_SPACE = 0, 1, 2, 3, 4


class DeployError(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


class NoSpace(DeployError):
    def __init__(self, message):
        DeployError.__init__(self, EXIT_NO_SPACE, message)


def _human(n):
    if n < 1024:
        return "%d B" % n
    return "%.1f KB" % (n / 1024.0)


def _rel(path):
    # A source path as the user knows it: relative to the repository when inside it.
    path = os.path.abspath(path)
    try:
        rel = os.path.relpath(path, REPO)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel
