# Heap allocation of the client's hot paths, measured on the MicroPython VM.
#
# Each measure_* function sets up and warms up, then returns (work, n): tests/vm/run.mjs
# collects garbage, then with the GC disabled reads gc.mem_alloc() around n calls of
# work() (tests/vm/vmrunner.py). tests/test_vm.py asserts the figures. The transport
# (umqtt_paho.testing's broker and link, through tests/fakenet.py, with broker.record =
# False) allocates nothing itself (measure_port_write and measure_cycle_idle prove it),
# so what measure_publish_qos0 finds is the library's.
#
# The smaller measure_* functions split the publish path into its pieces, so that a
# non-zero figure points at the line that allocates.
#
# No test_* functions here: this module has nothing for pytest on CPython to run.

from umqtt_paho import servercodec as pk

from fakenet import FakePort

N = 1000
TOPIC = b"sensors/vm/temperature"
PAYLOAD = b"x" * 64


def _client(**kw):
    from umqtt_paho import Client

    port = FakePort()
    c = Client(b"alloc", port=port, **kw)
    c.connect("broker.vm", 0, start_loop=False)
    port.broker.record = False  # from here on the broker only counts packets
    return c, port


def measure_publish_qos0():
    """Client.publish(bytes topic, bytes payload) at QoS 0, through the in-memory link."""
    c, port = _client()
    for _ in range(10):  # warm-up
        c.publish(TOPIC, PAYLOAD)
    publish = c.publish
    topic = TOPIC
    payload = PAYLOAD

    def work():
        publish(topic, payload)

    return work, N


# ---- the pieces of the QoS 0 publish path, for bisecting ------------------------------


def measure_port_write():
    """The transport alone: Link.write of a whole PUBLISH into the broker."""
    c, port = _client()
    buf = bytearray(128)
    n = pk.encode_publish(buf, TOPIC, len(PAYLOAD))
    buf[n : n + len(PAYLOAD)] = PAYLOAD
    link = port.link
    m = n + len(PAYLOAD)

    def work():
        link.write(buf, m, 1000)

    return work, N


def measure_encode_publish():
    """packet.encode_publish(buf, topic, payload_len, 0, False, False, 0)."""
    buf = bytearray(128)
    topic = TOPIC
    plen = len(PAYLOAD)
    encode = pk.encode_publish

    def work():
        encode(buf, topic, plen, 0, False, False, 0)

    return work, N


def measure_slice_assign():
    """sbuf[n : n + plen] = payload (bytearray slice assignment from bytes)."""
    buf = bytearray(128)
    payload = PAYLOAD
    plen = len(payload)

    def work():
        n = 24
        buf[n : n + plen] = payload

    return work, N


def measure_send_publish():
    """encode_publish into the send buffer, then Client._write_publish: one write."""
    c, port = _client()
    payload = PAYLOAD
    plen = len(payload)
    topic = TOPIC
    sbuf = c._sbuf
    encode = pk.encode_publish

    def work():
        n = encode(sbuf, topic, plen, 0, False, False, 0)
        c._write_publish(n, payload, plen)

    return work, N


def measure_nolock_with():
    """`with lock:` on the client's lock of a port without threads (allocate_lock())."""
    c, port = _client()
    lock = c._wlock

    def work():
        with lock:
            pass

    return work, N


def measure_cycle_idle():
    """Client.cycle() with nothing to read (keepalive 0)."""
    c, port = _client()
    cycle = c.cycle

    def work():
        cycle(10)

    return work, N


def measure_publish_qos0_no_payload():
    """publish(topic, None): skips the isinstance(payload, (int, float)) line of publish."""
    c, port = _client()
    publish = c.publish
    topic = TOPIC
    for _ in range(10):
        publish(topic, None)

    def work():
        publish(topic, None)

    return work, N


def measure_isinstance_tuple():
    """isinstance(x, (int, float)): the tuple is built at run time, on every call."""
    payload = PAYLOAD

    def work():
        isinstance(payload, (int, float))

    return work, N


class _FixedArgsLock:
    # a no-op lock with __exit__(self, exc_type, exc, tb) instead of __exit__(self, *a)
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return False


def measure_with_fixed_args_exit():
    """`with lock:` where __exit__ takes three named arguments instead of *a."""
    lock = _FixedArgsLock()

    def work():
        with lock:
            pass

    return work, N


# ---- QoS 1 and 2, and receiving ---------------------------------------------------------


def measure_publish_qos1():
    """Client.publish(bytes, bytes, qos=1): PUBLISH, then read and match the PUBACK."""
    c, port = _client()
    publish = c.publish
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(10):
        publish(topic, payload, 1)

    def work():
        publish(topic, payload, 1)

    return work, N


def measure_publish_qos2():
    """Client.publish(bytes, bytes, qos=2): PUBLISH, PUBREC, PUBREL, PUBCOMP."""
    c, port = _client()
    publish = c.publish
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(10):
        publish(topic, payload, 2)

    def work():
        publish(topic, payload, 2)

    return work, N


def measure_receive_qos0_views():
    """cycle() reading one inbound QoS 0 PUBLISH, delivered as memoryviews (deliver_views)."""
    c, port = _client()
    c.deliver_views = True
    c.on_message = _ignore
    buf = bytearray(128)
    n = pk.encode_publish(buf, TOPIC, len(PAYLOAD))
    buf[n : n + len(PAYLOAD)] = PAYLOAD
    m = n + len(PAYLOAD)
    link = port.link
    cycle = c.cycle
    for _ in range(10):
        link.push(buf, m)
        cycle(10)

    def work():
        link.push(buf, m)
        cycle(10)

    return work, N


def measure_receive_qos1_views():
    """cycle() reading one inbound QoS 1 PUBLISH: filter match, function call, PUBACK."""
    c, port = _client()
    c.deliver_views = True
    c.subscribe(b"sensors/+/temperature", _ignore, 1)
    buf = bytearray(128)
    n = pk.encode_publish(buf, TOPIC, len(PAYLOAD), 1, False, False, 77)
    buf[n : n + len(PAYLOAD)] = PAYLOAD
    m = n + len(PAYLOAD)
    link = port.link
    cycle = c.cycle
    for _ in range(10):
        link.push(buf, m)
        cycle(10)

    def work():
        link.push(buf, m)
        cycle(10)

    return work, N


def _ignore(client, payload, topic):
    pass
