# The client tests' fake network: a thin layer over umqtt_paho.testing, the one fake
# broker of this repository (its header documents the broker, the link and the
# scripted-test hooks), plus the helpers the plain-assert test modules share.
#
# Runs on CPython (pytest) and inside the MicroPython VM (tests/test_vm.py copies it
# next to the test modules): no pytest, no f-strings, no typing.
#
#     c, port = connected_client()          # a Client on a FakePort, connected
#     port.link.written                     # the bytes of each write() call
#     port.link.send(b"\x30\x03\x00\x01t")  # raw bytes from the broker
#     port.broker.puback = False            # ... or a broker that stops answering
#     port.broker.types()                   # ["CONNECT", "PUBLISH", ...]
#     port.clock.now                        # the fake time, in ms

from umqtt_paho import MQTTError
from umqtt_paho import servercodec as pk
from umqtt_paho.testing import Broker, FakeClock, FakePort, Link  # noqa: F401 (re-exported)


def connected_client(port=None, keepalive=0, client_id="c1", **kw):
    """A Client on a FakePort (a new one if None), connected without a loop thread;
    returns (client, port)."""
    from umqtt_paho import Client

    if port is None:
        port = FakePort()
    c = Client(client_id, port=port, **kw)
    c.connect("broker.test", keepalive, start_loop=False)
    return c, port


def publish_bytes(topic, payload, qos=0, pid=0, dup=False, retain=False):
    """A whole PUBLISH packet, for raw sends."""
    return pk.to_bytes(pk.encode_publish_message, topic, payload, qos, retain, dup, pid)


def raises(exc_type, fn, *args, **kw):
    """Call fn; return the exc_type it raises, fail if it raises nothing."""
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError("%r did not raise %s" % (fn, exc_type.__name__))


def mqtt_error(code, fn, *args, **kw):
    """Call fn; return the MQTTError it raises, which must have this code."""
    e = raises(MQTTError, fn, *args, **kw)
    assert e.code == code, "code %r, expected %r: %s" % (e.code, code, e)
    return e


def arg_error(rule, fn, *args, **kw):
    """Call fn; return the ValueError it raises, whose text must cite rule."""
    e = raises(ValueError, fn, *args, **kw)
    assert rule in str(e), "%r does not cite %r" % (str(e), rule)
    return e


def no_errors(port):
    assert port.broker.errors == [], port.broker.errors


def cycle_until(c, port, cond, limit_ms=60000):
    """Cycle until cond() holds; fail if that takes more than limit_ms of fake time."""
    t0 = port.clock.now
    while not cond():
        c.cycle()
        assert port.clock.now - t0 <= limit_ms, "condition not met within %d ms" % limit_ms


def cycle_all(c):
    """Cycle until a cycle reads nothing."""
    while c.cycle():
        pass


# ---- folders for flash logs (a temporary folder on CPython, the VM's /tmp) ------------

try:
    import os
    import tempfile

    _TMP = "%s/umqtt_paho_%d_" % (tempfile.gettempdir(), os.getpid())
except ImportError:  # MicroPython: the VM's in-memory filesystem
    import os

    _TMP = "/tmp/umqtt_paho_"


def remove_dir(path):
    """Remove a flash log's folder and the files in it (nothing if it is not there)."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        os.remove(path + "/" + name)
    os.rmdir(path)


def tmp_dir(name):
    """The path of the folder `name` for flash logs, unique to this process."""
    return _TMP + name


def fresh_dir(name):
    """tmp_dir(name), emptied: no folder there (FlashLog creates it)."""
    path = _TMP + name
    remove_dir(path)
    return path
