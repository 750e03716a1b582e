# The MicroPython side of tests/vm/run.mjs: runs test_* and measure_* functions of a
# test module inside the VM and returns each result as one JSON line.
#
# run.mjs calls these functions, one runPython() per step, so that a pending
# gc.collect() runs between steps (in this VM a collection only happens when the
# outermost runPython returns).
#
# measure_* functions: measure_x() sets up and warms up, then returns (work, n). The
# runner collects garbage (step 1), then (step 2) with the GC disabled reads
# gc.mem_alloc(), calls work() n times, and reads it again. The same loop around an empty
# function is measured first, so the harness itself is shown to cost 0 bytes.

import gc
import io
import json
import os
import sys

_LIB = "umqtt_paho"


def _walk(path, out):
    for entry in os.ilistdir(path):
        name = entry[0]
        full = path.rstrip("/") + "/" + name
        if full in ("/dev", "/proc"):
            continue
        if entry[1] == 0x4000:  # directory
            _walk(full, out)
        else:
            out.append(full)
    return out


def check_mpy():
    """JSON: where each umqtt_paho module came from; ok only if all are .mpy files
    and no umqtt_paho .py file exists anywhere in the VM's filesystem."""
    import umqtt_paho  # noqa: F401
    import umqtt_paho.packet  # noqa: F401
    import umqtt_paho.errors  # noqa: F401
    import umqtt_paho.client  # noqa: F401

    files = {}
    ok = True
    for name in sys.modules:
        if name == _LIB or name.startswith(_LIB + "."):
            f = getattr(sys.modules[name], "__file__", None)
            files[name] = f
            if not f or not f.endswith(".mpy"):
                ok = False
    sources = []
    for path in _walk("/", []):
        if "/" + _LIB + "/" in path and not path.endswith(".mpy"):
            sources.append(path)
    if sources:
        ok = False
    return json.dumps(
        {
            "event": "setup",
            "ok": ok,
            "modules": files,
            "non_mpy_files": sources,
            "sys_path": list(sys.path),
            "implementation": "%s %s %s"
            % (
                sys.implementation.name,
                ".".join([str(x) for x in sys.implementation.version[:3]]),
                sys.platform,
            ),
        }
    )


def _module(modname):
    mod = sys.modules.get(modname)
    if mod is None:
        mod = __import__(modname)
    return mod


def import_module(modname):
    """JSON: ok, or the traceback of the module's import."""
    try:
        _module(modname)
    except BaseException as e:  # noqa: B036
        return _failure(modname, e)
    return json.dumps({"test": modname, "ok": True, "traceback": ""})


def list_tests(modname):
    """JSON: {"names": the module's test_* and measure_* functions, sorted}, but those
    its HOST_ONLY tuple names."""
    mod = _module(modname)
    host_only = getattr(mod, "HOST_ONLY", ())
    names = []
    for name in dir(mod):
        if name in host_only:
            continue
        if name.startswith("test_") or name.startswith("measure_"):
            if callable(getattr(mod, name)):
                names.append(name)
    names.sort()
    return json.dumps({"ok": True, "names": names})


def _failure(name, e):
    s = io.StringIO()
    sys.print_exception(e, s)
    return json.dumps({"test": name, "ok": False, "traceback": s.getvalue()})


def run_test(modname, name):
    try:
        fn = getattr(_module(modname), name)
        fn()
    except BaseException as e:  # noqa: B036 (AssertionError, SystemExit, MemoryError...)
        return _failure(name, e)
    return json.dumps({"test": name, "ok": True, "traceback": ""})


_work = None
_n = 0


def measure_setup(modname, name):
    """Step 1: build the workload (setup and warm-up run here). A collection follows
    when this runPython returns."""
    global _work, _n
    _work = None
    try:
        _work, _n = getattr(_module(modname), name)()
    except BaseException as e:  # noqa: B036
        return _failure(name, e)
    gc.collect()
    return json.dumps({"test": name, "ok": True, "traceback": "", "step": "setup"})


def _nothing():
    pass


def _loop(fn, n):
    for _ in range(n):
        fn()


def measure_run(name):
    """Step 2: gc.disable(), mem_alloc before and after n calls of the workload."""
    global _work
    work = _work
    n = _n
    _work = None
    try:
        gc.disable()
        a = gc.mem_alloc()
        _loop(_nothing, n)
        b = gc.mem_alloc()
        _loop(work, n)
        c = gc.mem_alloc()
        gc.enable()
    except BaseException as e:  # noqa: B036
        gc.enable()
        return _failure(name, e)
    base = b - a
    used = c - b
    return json.dumps(
        {
            "test": name,
            "ok": True,
            "traceback": "",
            "measure": {
                "iterations": n,
                "bytes": used,
                "bytes_per_iteration": used / n,
                "harness_bytes": base,
            },
        }
    )
