"""The codec and the session (umqtt_paho.packet, .errors, .session) import no
I/O, clock or threads, and the session no driver.

A fresh Python process makes `socket`, `time`, `network`, `select`, `ssl`, `_thread`
and `threading` unimportable (sys.modules[name] = None makes `import name` raise
ImportError), then imports the codec and encodes and decodes packets. A second test
applies the same poisoning to a tiny module that does `import socket` and checks that
it fails, proving the technique catches such an import.

The store-and-forward path (umqtt_paho.forward) stays out of a client that uses neither
an outbox nor a store, and keeps no slot states of its own (the session owns them).
"""

import os
import subprocess
import sys
import textwrap

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POISONED = ("socket", "time", "network", "select", "ssl", "_thread", "threading")

POISON = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, %r)
    for name in %r:
        sys.modules[name] = None
    """
)

CODEC_SCRIPT = textwrap.dedent(
    """
    import umqtt_paho.errors
    import umqtt_paho.packet
    import umqtt_paho.session
    from umqtt_paho import packet, errors, session
    loaded = sorted(m for m in sys.modules if m.startswith("umqtt_paho"))
    print("loaded:", loaded)

    buf = bytearray(64)
    n = packet.encode_publish(buf, b"a/b", 2, qos=1, retain=True, pid=7)
    buf[n:n + 2] = b"hi"
    n += 2
    mv = memoryview(buf)
    assert packet.packet_type(mv[0]) == 3  # PUBLISH
    rl = mv[1]  # one length byte: a short packet
    hs = 1 + packet.remaining_length_size(rl)
    p = packet.decode_publish(mv[0], mv, hs, rl)
    assert bytes(mv[p:hs + rl]) == b"hi"
    assert packet.topic_matches_sub("a/+", mv[hs + 2:hs + 5].tobytes())
    n = packet.encode_connect(buf, b"cid", will_topic=b"w", username=b"u", password=b"p")
    assert n > 0
    try:
        packet.decode_connack(0x20, memoryview(b"\\x01\\x05"), 0, 2)
    except errors.MQTTError as e:
        assert e.code == errors.ERR_PROTOCOL
    else:
        raise AssertionError("no MQTTError")
    s = session.Session(2, 2)
    i = s.take(3)  # a PUBLISH slot
    s.accept(i, b"t", b"p", 1, False, True)
    assert s.ack(4, s.pids[i]) == i and s.done(i)  # PUBACK
    for name in %r:
        assert sys.modules[name] is None, name  # still poisoned: nobody replaced it
        del sys.modules[name]  # so that interpreter shutdown (threading._shutdown) is quiet
    print("codec ok")
    """
)


def run(script, extra_path=None):
    code = POISON % (extra_path or REPO_ROOT, POISONED) + script
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=extra_path or REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# Load the codec files as members of a bare `umqtt_paho` package, without running
# umqtt_paho/__init__.py (which imports the client): this checks the codec on its own.
BARE_PACKAGE = textwrap.dedent(
    """
    import types
    pkg = types.ModuleType("umqtt_paho")
    pkg.__path__ = [%r]
    sys.modules["umqtt_paho"] = pkg
    """
)


def test_codec_imports_no_socket_time_network_or_threads():
    pkg_dir = os.path.join(REPO_ROOT, "umqtt_paho")
    r = run(BARE_PACKAGE % pkg_dir + CODEC_SCRIPT % (POISONED,))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "codec ok" in r.stdout
    assert "umqtt_paho.session" in r.stdout and "umqtt_paho.client" not in r.stdout
    assert r.stderr == "", r.stderr


def test_codec_through_the_package_imports_no_socket_time_network_or_threads():
    # the same through `import umqtt_paho.packet`, i.e. with umqtt_paho/__init__.py
    r = run(CODEC_SCRIPT % (POISONED,))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "codec ok" in r.stdout
    assert r.stderr == "", r.stderr


def test_poisoning_catches_an_import_of_socket(tmp_path):
    (tmp_path / "uses_socket.py").write_text("import socket\n\nVALUE = 1\n")
    (tmp_path / "uses_time.py").write_text("from time import sleep\n")
    (tmp_path / "clean.py").write_text("VALUE = 2\n")
    r = run("import clean\nprint('clean', clean.VALUE)\n", str(tmp_path))
    assert r.returncode == 0 and "clean 2" in r.stdout, r.stdout + r.stderr
    for mod in ("uses_socket", "uses_time"):
        r = run("import %s\nprint('imported')\n" % mod, str(tmp_path))
        assert r.returncode != 0, "poisoning missed the import in " + mod
        assert "ImportError" in r.stderr or "ModuleNotFoundError" in r.stderr, r.stderr
        assert "imported" not in r.stdout


def test_forward_keeps_slots_through_the_session_not_its_own_states():
    # forward.py once copied client.py's slot states; now the session (session.py) owns
    # every transition and forward.py asks it (take, accept, ack) by packet type.
    import re

    from umqtt_paho import forward

    src = open(forward.__file__).read()
    assert not re.search(r"^_(WAIT_\w+|RESERVED|SENT|FREE|DONE) = ", src, re.M)
    assert "states[" not in src and "from .client" not in src


def test_a_client_without_outbox_or_store_does_not_load_forward():
    code = ("import sys\nfrom umqtt_paho import Client\nfrom umqtt_paho.testing import FakePort\n"
            "Client('x', port=FakePort())\nprint('umqtt_paho.forward' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
