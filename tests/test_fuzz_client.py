"""Fuzzing the client's read path, and every bounded wait, on the fake network and clock.

- Hypothesis builds streams of valid broker packets (CONNACK, PUBLISH at QoS 0/1/2,
  PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP, oversize PUBLISH, ...),
  mutates them (bit flips, truncation, duplicated slices, inserted and deleted bytes,
  overwritten bytes) or makes up random bytes, and feeds them to a connected client
  (umqtt_paho.testing's broker through tests/fakenet.py: no real time passes), in
  chunks of any size, followed by EOF or silence. client.cycle() runs a bounded number
  of times with a loop_failure hook that records the error. Required for every
  example: only MQTTError or OSError ever comes out (of cycle(), the hook's last_error,
  or a publish() from a callback); connected() is False whenever the hook runs; no
  cycle() call exceeds its time bound on the fake clock, and none loops without time
  passing (a read counter stops a hang).
- The same for the handshake: the stream is the broker's answer to CONNECT.
- One fake-clock test per bounded wait that test_client.py does not already measure.

Run with -s to see the example counts.
"""

import errno
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakenet import FakePort, Link
from umqtt_paho import BREAK_LOOP, RECOVERED, Client, MQTTError
from umqtt_paho import errors as E
from umqtt_paho import servercodec as pk

pytestmark = pytest.mark.timeout(120)

CYCLE_MS = 100
CMD_MS = 1000
KEEPALIVE_S = 2
MAX_CYCLES = 40
MAX_READS = 20000  # read_into calls in one example: more is a loop without progress

# FUZZ_RANDOM=1 explores new examples on each run; by default every run is the same.
DERANDOMIZE = not os.environ.get("FUZZ_RANDOM")


def fuzz_settings(n):
    return settings(
        max_examples=n,
        database=None,
        deadline=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


EXAMPLES = Counter()  # examples run, per test
WORST = Counter()  # longest fake time of one cycle() / connect(), per test
OUTCOMES = Counter()  # how the examples ended: the first error's kind, or "survived"


def kind(e):
    if isinstance(e, MQTTError):
        return "MQTTError %s" % {
            2: "PROTOCOL",
            7: "CONN_LOST",
            15: "QUEUE_SIZE",
            16: "KEEPALIVE",
            17: "TIMEOUT",
            5: "CONN_REFUSED",
            4: "NO_CONN",
        }.get(e.code, e.code)
    return type(e).__name__


# ---- a fake network with timed deliveries and a hang guard -----------------------------


class Hang(BaseException):
    """Not an Exception: the client's `except Exception` must not swallow it."""


class TimedNetwork(Link):
    """The fake broker's Link plus: bytes delivered at given fake times (schedule), an
    open or a write that take their whole timeout and fail (a host or peer that never
    answers), reads that find nothing while the broker still hears the client
    (stall_reads), writes taken after the stream ended (hangup), and a read counter
    that raises Hang."""

    def __init__(self, port):
        super().__init__(port)
        self.schedule = []  # [(at_ms, bytes)], in time order
        self.reads = 0
        self.stall_reads = False

    def _due(self):
        while self.schedule and self.schedule[0][0] <= self.clock.now:
            self.send(self.schedule.pop(0)[1])

    def open(self, host, port, ssl_ctx, timeout_ms):
        self.open_args = (host, port, ssl_ctx, timeout_ms)
        p = self.port
        if p.open_takes is not None:
            took = min(p.open_takes, timeout_ms)  # a port keeps to the timeout it is given
            self.clock.advance(took)
            if took < p.open_takes:
                raise OSError(errno.ETIMEDOUT, "connect timed out")
        super().open(host, port, ssl_ctx, timeout_ms)

    def read_into(self, buf, n, timeout_ms):
        self.reads += 1
        if self.reads > MAX_READS:
            raise Hang("%d reads without the client giving up" % self.reads)
        self._due()
        if not self.unread() and not self.closed and self.schedule:
            nxt = self.schedule[0][0]
            if nxt <= self.clock.now + max(timeout_ms, 0):
                self.clock.advance(nxt - self.clock.now)
                self._due()
        if self.stall_reads and self.state == "open":
            self.clock.advance(max(timeout_ms, 0))  # half-open: nothing ever arrives
            return 0
        return super().read_into(buf, n, timeout_ms)

    def write(self, buf, n, timeout_ms):
        if self.port.write_blocks and not self.closed:
            self.clock.advance(max(timeout_ms, 0))  # the peer does not read: buffers full
            raise OSError(errno.ETIMEDOUT, "write timed out after %d ms" % timeout_ms)
        if self.state == "eof":
            # The stream has ended (the broker's FIN): what the client still writes is
            # taken and lost, as by a TCP socket before the RST, so the client goes on
            # reading the rest of the stream instead of failing at its first write.
            self.writes += 1
            return
        super().write(buf, n, timeout_ms)


class TimedPort(FakePort):
    def __init__(self):
        super().__init__()
        self.open_takes = None  # ms an open() takes (None: at once)
        self.write_blocks = False

    def Network(self):
        net = TimedNetwork(self)
        self.links.append(net)
        return net


# ---- packets and mutations ------------------------------------------------------------

TOPICS = [b"fz/a", b"fz/b/c", b"a/b", b"other", b"$SYS/x", "fz/\u00e9".encode()]


def publish_bytes(topic, payload, qos=0, pid=1, dup=False, retain=False):
    buf = bytearray(16 + len(topic))
    n = pk.encode_publish(buf, topic, len(payload), qos, retain, dup and qos > 0, pid)
    return bytes(buf[:n]) + payload


def ack(ptype, pid):
    return bytes([ptype << 4 | (2 if ptype == pk.PUBREL else 0), 2, pid >> 8, pid & 0xFF])


pids = st.one_of(st.integers(1, 6), st.sampled_from([0, 255, 256, 65535]))

valid_packet = st.one_of(
    st.builds(
        publish_bytes,
        st.sampled_from(TOPICS),
        st.binary(max_size=40),
        st.integers(0, 2),
        st.integers(1, 6),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(  # larger than max_packet_size: drained, acked, dropped
        publish_bytes,
        st.sampled_from(TOPICS),
        st.binary(min_size=130, max_size=300),
        st.integers(0, 2),
        st.integers(1, 6),
    ),
    st.builds(
        ack,
        st.sampled_from([pk.PUBACK, pk.PUBREC, pk.PUBREL, pk.PUBCOMP, pk.UNSUBACK]),
        st.integers(1, 6),
    ),
    st.builds(
        lambda p, codes: bytes([0x90, 2 + len(codes), p >> 8, p & 0xFF]) + bytes(codes),
        pids,
        st.lists(st.sampled_from([0, 1, 2, 0x80, 3]), min_size=1, max_size=3),
    ),
    st.builds(lambda sp, rc: bytes([0x20, 2, sp, rc]), st.integers(0, 1), st.integers(0, 6)),
    st.just(b"\xd0\x00"),  # PINGRESP
    st.just(b"\x30\xff\xff\xff\x7f"),  # PUBLISH claiming 256 MB
)

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(
        st.just("duplicate"), st.integers(0, 10**6), st.integers(1, 12), st.integers(0, 10**6)
    ),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 8)),
    st.tuples(
        st.just("set"),
        st.integers(0, 10**6),
        st.sampled_from(
            [
                0x00,
                0x01,
                0x02,
                0x7F,
                0x80,
                0xFF,
                0x30,
                0x32,
                0x34,
                0x3A,
                0x40,
                0x50,
                0x62,
                0x70,
                0x90,
                0xB0,
                0xD0,
                0x20,
            ]
        ),
    ),
)


def mutate(data, mutations):
    b = bytearray(data)
    for m in mutations:
        kind, pos = m[0], m[1] % (len(b) + 1)
        if kind == "flip" and b:
            b[pos % len(b)] ^= 1 << m[2]
        elif kind == "truncate":
            del b[pos:]
        elif kind == "duplicate" and b:
            piece = b[pos : pos + m[2]]
            at = m[3] % (len(b) + 1)
            b[at:at] = piece
        elif kind == "insert":
            b[pos:pos] = m[2]
        elif kind == "delete":
            del b[pos : pos + m[2]]
        elif kind == "set" and b:
            b[pos % len(b)] = m[2]
    return bytes(b)


mutated_stream = st.builds(
    lambda packets, muts: mutate(b"".join(packets), muts),
    st.lists(valid_packet, min_size=1, max_size=8),
    st.one_of(st.just([]), st.lists(mutation, min_size=1, max_size=4)),
)

scenario = st.fixed_dictionaries(
    {
        "chunk": st.sampled_from([None, None, 1, 2, 3, 7]),  # bytes per read (None: all)
        "end": st.sampled_from(["eof", "silence"]),
        "hook": st.sampled_from(["break", "recover"]),
        "inflight": st.lists(st.integers(1, 2), max_size=3),  # QoS of messages awaiting acks
        "reply": st.booleans(),  # the message function publishes QoS 1 (nested reads)
        "views": st.booleans(),
        "clean": st.booleans(),
        # The stream in len(gaps) + 1 pieces, piece k+1 arriving gaps[k] ms after piece k:
        # stalls mid-packet, keepalive pings between packets.
        "gaps": st.lists(st.integers(0, 2500), max_size=3),
    }
)


def pieces(stream, gaps, t0):
    """[(at_ms, bytes)]: the stream cut in equal pieces, delivered after the gaps."""
    k = len(gaps) + 1
    size = -(-len(stream) // k) if stream else 0
    out = []
    at = t0
    for j in range(k):
        part = stream[j * size : (j + 1) * size]
        if j:
            at += gaps[j - 1]
        if part:
            out.append((at, part))
    return out


# ---- the harness ----------------------------------------------------------------------


def cycle_bound_ms():
    # One cycle(): the first byte within cycle_timeout, the rest of the packet within
    # command_timeout; a message function's publish() may wait up to command_timeout
    # for a slot, reading nested; a RECOVERED hook reconnects within command_timeout.
    return CYCLE_MS + 4 * CMD_MS


def run_stream(stream, sc, name, handshake=False):
    EXAMPLES[name] += 1
    port = TimedPort()
    broker = port.broker
    broker.puback = broker.pubrec = broker.pubcomp = False
    broker.forward = False  # a scripted broker: only the stream reaches the client
    foreign = []  # anything but MQTTError/OSError, from anywhere
    hook_errors = []

    def on_msg(client, payload, topic):
        bytes(payload), str(topic)  # touch them
        if sc["reply"]:
            try:
                client.publish(b"fz/reply", b"r", qos=1, wait=False)
            except (MQTTError, OSError):
                pass
            except Exception as e:
                foreign.append(("publish() in a message function", e))

    def hook(client):
        err = client.last_error
        hook_errors.append(err)
        if client.connected():
            foreign.append(("connected() True in loop_failure", err))
        if sc["hook"] == "recover" and len(hook_errors) < 3:
            # The reconnect goes to a well-behaved broker that acks what is resent. (One
            # that never acks makes the resubscribe fail for want of a free slot, which
            # leaves connected() True: test_faults.py::
            # test_reconnect_that_fails_after_connack_leaves_the_client_disconnected.)
            broker.connack = True
            broker.puback = broker.pubrec = broker.pubcomp = True
            broker.on_packet = None  # a plain broker from now on
            return RECOVERED if client.reconnect() == 0 else BREAK_LOOP
        return BREAK_LOOP

    c = Client(
        "fz",
        port=port,
        clean_session=sc["clean"],
        cycle_timeout=CYCLE_MS,
        command_timeout=CMD_MS,
        max_packet_size=128,
        send_buffer=64,
        max_inflight=3,
        max_inflight_in=4,
    )
    c.on_log = lambda *a: None
    c.deliver_views = sc["views"]
    c.subscribe("fz/#", on_msg, 2)
    c.subscribe("a/b", on_msg, 1)
    c.on_message = on_msg

    def check(e, where):
        if not isinstance(e, (MQTTError, OSError)):
            foreign.append((where, e))

    try:
        if handshake:
            # The stream answers CONNECT (it should start with a CONNACK).
            broker.connack = False

            def answer(link, name, value):
                if name == "CONNECT":
                    link.send(stream)
                    if sc["end"] == "eof":
                        link.hangup()

            broker.on_packet = answer
            t0 = port.clock.now
            try:
                c.connect("broker.test", KEEPALIVE_S, start_loop=False, loop_failure=hook)
            except Exception as e:
                check(e, "connect()")
                OUTCOMES["connect() raised " + kind(e)] += 1
                took = port.clock.now - t0
                WORST[name] = max(WORST[name], took)
                assert not c.connected(), "connected() after connect() raised %r" % e
                assert took <= CMD_MS, "connect() took %d ms of fake time" % took
                return foreign
            took = port.clock.now - t0
            WORST[name] = max(WORST[name], took)
            if not port.link.chunk and sc["chunk"]:
                port.link.chunk = sc["chunk"]
        else:
            c.connect("broker.test", KEEPALIVE_S, start_loop=False, loop_failure=hook)
            for q in sc["inflight"]:
                c.publish(b"fz/out", b"m", qos=q, wait=False)
            net = port.link
            net.chunk = sc["chunk"] or 0
            net.schedule = pieces(stream, sc["gaps"], port.clock.now)
            net._due()
            if sc["end"] == "eof" and not net.schedule:
                net.hangup()
        stream_net = port.link  # the connection that carries the stream
        for _ in range(MAX_CYCLES):
            if sc["end"] == "eof" and not stream_net.schedule:
                stream_net.hangup()  # the broker closes after the last piece
            t0 = port.clock.now
            try:
                c.cycle()
            except Exception as e:
                check(e, "cycle()")
                if c.connected():
                    foreign.append(("connected() True after cycle() raised", e))
                break
            finally:
                took = port.clock.now - t0
                WORST[name] = max(WORST[name], took)
                assert took <= cycle_bound_ms(), "one cycle() took %d ms of fake time" % took
            if c._nest:
                foreign.append(("nesting left at %d" % c._nest, None))
            if c.pending() > 3:
                foreign.append(("pending() %d > max_inflight" % c.pending(), None))
    except Hang as h:
        foreign.append(("hang", h))
    for e in hook_errors:
        check(e, "loop_failure last_error")
    OUTCOMES[kind(hook_errors[0]) if hook_errors else "survived"] += 1
    return foreign


def describe(stream, sc, foreign):
    return "stream %r, scenario %r:\n%s" % (
        stream,
        sc,
        "\n".join("  %s: %r" % (where, e) for where, e in foreign),
    )


# ---- the fuzz tests ---------------------------------------------------------------------


def test_fuzz_read_path_with_mutated_packets():
    @fuzz_settings(1100)
    @given(mutated_stream, scenario)
    def run(stream, sc):
        foreign = run_stream(stream, sc, "mutated")
        assert not foreign, describe(stream, sc, foreign)

    run()
    print(
        "\nfuzz, mutated packet streams: %d examples, longest cycle() %d ms (bound %d)"
        % (EXAMPLES["mutated"], WORST["mutated"], cycle_bound_ms())
    )
    print("how they ended so far: %s" % dict(OUTCOMES.most_common()))


def test_fuzz_read_path_with_random_bytes():
    header = st.sampled_from(
        [b"", b"\x30", b"\x32", b"\x34", b"\x40\x02", b"\x62\x02", b"\x90", b"\x30\x80\x80"]
    )

    @fuzz_settings(350)
    @given(st.builds(lambda h, b: h + b, header, st.binary(max_size=300)), scenario)
    def run(stream, sc):
        foreign = run_stream(stream, sc, "random")
        assert not foreign, describe(stream, sc, foreign)

    run()
    print(
        "\nfuzz, random byte streams: %d examples, longest cycle() %d ms (bound %d)"
        % (EXAMPLES["random"], WORST["random"], cycle_bound_ms())
    )


def test_fuzz_handshake_answers():
    connack = st.builds(
        lambda sp, rc: bytes([0x20, 2, sp, rc]),
        st.sampled_from([0, 0, 0, 1, 2]),
        st.sampled_from([0, 0, 0, 0, 1, 5, 6]),
    )
    answer = st.builds(
        lambda first, rest, muts: mutate(first + b"".join(rest), muts),
        connack,
        st.lists(valid_packet, max_size=4),
        st.lists(mutation, max_size=3),
    )

    @fuzz_settings(450)
    @given(answer, scenario)
    def run(stream, sc):
        foreign = run_stream(stream, sc, "handshake", handshake=True)
        assert not foreign, describe(stream, sc, foreign)

    run()
    total = sum(EXAMPLES.values())
    print(
        "\nfuzz, answers to CONNECT: %d examples, longest connect()/cycle() %d ms"
        % (EXAMPLES["handshake"], WORST["handshake"])
    )
    print("fuzz examples run in this session: %d (%s)" % (total, dict(EXAMPLES)))
    print("how they ended: %s" % dict(OUTCOMES.most_common()))


# ======================================================================================
# Bounded waits, on the fake clock
# ======================================================================================
#
# Already measured in test_client.py, not repeated here:
#   broker accepts but never sends CONNACK:
#       test_no_connack_times_out_at_command_timeout
#   half-open link, no PINGRESP (idle client):
#       test_missing_pingresp_is_a_dead_link_within_1_5_keepalive
#   stall mid-packet:
#       test_stall_mid_packet_is_bounded_by_command_timeout
#   QoS 1 publish without PUBACK:
#       test_publish_qos1_without_puback_returns_at_command_timeout_and_stays_pending
#   flush(timeout), in-flight table full:
#       test_flush_waits_for_every_ack, test_inflight_table_full_waits_command_timeout_then_raises
# (and on real sockets in test_bounds.py and test_faults.py).


def test_connect_to_a_host_whose_open_never_completes():
    port = TimedPort()
    port.open_takes = 10**9  # the TCP (or TLS) handshake never finishes
    c = Client("c", port=port, command_timeout=3000, cycle_timeout=500)
    c.on_log = lambda *a: None
    t0 = port.clock.now
    with pytest.raises(OSError):
        c.connect("h", 60, start_loop=False)
    took = port.clock.now - t0
    print("\nopen never completes: connect() gave up after %d ms (bound 3000)" % took)
    assert port.link.open_args[3] <= 3000  # the port was given the bound
    assert took <= 3000 and not c.connected() and c.get_rc() == -1
    assert c.reconnect() == -1 and port.clock.now - t0 <= 2 * 3000


def test_slow_open_and_no_connack_share_one_command_timeout():
    # DNS + TCP + TLS + CONNACK are one deadline: an open that took 70 % of it leaves
    # 30 % for the CONNACK.
    port = TimedPort()
    port.open_takes = 2100
    port.broker.connack = False
    c = Client("c", port=port, command_timeout=3000, cycle_timeout=500)
    t0 = port.clock.now
    with pytest.raises(MQTTError) as ei:
        c.connect("h", 60, start_loop=False)
    took = port.clock.now - t0
    print("\nslow open + no CONNACK: connect() gave up after %d ms (bound 3000)" % took)
    assert ei.value.code == E.ERR_TIMEOUT and took <= 3000


@pytest.mark.parametrize("call", ["connect", "publish", "flush"])
def test_packet_that_starts_just_before_the_deadline_and_stalls(call):
    # The answer's first byte comes 1 ms before the caller's deadline, the rest never.
    # The call must still end at its bound: connect() "DNS, TCP, TLS, CONNACK inside
    # command_timeout"; publish(wait=True) returns "after command_timeout"; flush(ms)
    # returns False when "timeout_ms passes". (Without the late first byte these are
    # test_client.py's test_no_connack_times_out_at_command_timeout,
    # test_publish_qos1_without_puback_... and test_flush_waits_for_every_ack.)
    port = TimedPort()
    c = Client("c", port=port, command_timeout=3000, cycle_timeout=500)
    c.on_log = lambda *a: None
    bound = 3000
    late = {"connect": b"\x20", "publish": b"\x40", "flush": b"\x40"}[call]
    if call == "connect":
        port.broker.connack = False
        real_network = port.Network

        def network():
            net = real_network()
            net.schedule = [(port.clock.now + bound - 1, late)]
            return net

        port.Network = network
    else:
        c.connect("h", 60, start_loop=False)
        port.broker.puback = False
        if call == "flush":
            c.publish("t", "x", qos=1, wait=False)
            bound = 1500
    t0 = port.clock.now
    if call != "connect":
        port.link.schedule = [(t0 + bound - 1, late)]
    if call == "connect":
        with pytest.raises(MQTTError) as ei:
            c.connect("h", 60, start_loop=False)
        assert ei.value.code == E.ERR_TIMEOUT
    elif call == "publish":
        assert c.publish("t", "x", qos=1) == 1  # accepted: returns, never raises
    else:
        assert c.flush(bound) is False
    took = port.clock.now - t0
    print(
        "\n%s, answer begun at %d ms then stalled: returned after %d ms (bound %d)"
        % (call, bound - 1, took, bound)
    )
    assert took <= bound, "%s took %d ms, its bound is %d ms" % (call, took, bound)


def test_half_open_link_found_while_the_application_keeps_sending():
    # A sensor publishing QoS 0 every 200 ms keeps last_sent fresh; the link is half-open
    # (what we send is swallowed, nothing comes back). The PINGREQ must still go out
    # half a keepalive after the last packet RECEIVED, and the link be declared dead
    # within 1.5 x keepalive of it (+ one cycle).
    port = TimedPort()
    c = Client("c", port=port, cycle_timeout=100)
    failures = []
    c.connect(
        "h",
        10,
        start_loop=False,
        loop_failure=lambda cl: failures.append((port.clock.now, cl.last_error)) or BREAK_LOOP,
    )
    port.clock.advance(3000)
    c.publish("t", "x", qos=1)  # traffic both ways: its PUBACK is the last packet in
    port.link.stall_reads = True
    t_last = port.clock.now  # nothing is received after this
    with pytest.raises(MQTTError):
        while port.clock.now - t_last < 60000:
            c.publish("sensor", "21.5")  # QoS 0: last_sent is always fresh
            for _ in range(2):
                c.cycle()
    took = failures[0][0] - t_last
    print("\nhalf-open link while sending: dead after %d ms (bound %d)" % (took, 15000 + 100))
    assert failures[0][1].code == E.ERR_KEEPALIVE
    assert took <= 15000 + 100


def test_disconnect_with_the_peer_gone_returns_within_its_timeout():
    port = TimedPort()
    c = Client("c", port=port, command_timeout=10000)
    c.connect("h", 60, start_loop=False)
    port.write_blocks = True  # the peer stopped reading: the DISCONNECT cannot leave
    t0 = port.clock.now
    c.disconnect(timeout=300)
    took = port.clock.now - t0
    assert took <= 300 and not c.connected() and port.link.closed
    # Without a timeout: command_timeout.
    port2 = TimedPort()
    c2 = Client("c", port=port2, command_timeout=2000)
    c2.connect("h", 60, start_loop=False)
    port2.write_blocks = True
    t0 = port2.clock.now
    c2.disconnect()
    took2 = port2.clock.now - t0
    print(
        "\ndisconnect, peer gone: %d ms (bound 300); without timeout %d ms (bound 2000)"
        % (took, took2)
    )
    assert took2 <= 2000 and not c2.connected()


def test_accepted_publish_whose_write_never_completes():
    # The peer stopped reading: publish() QoS 1 accepts the message, its write times out
    # after command_timeout, the link is closed, publish() returns (never raises after
    # accepting) and the message stays pending for the resend.
    port = TimedPort()
    c = Client("c", port=port, command_timeout=2000, clean_session=False)
    c.on_log = lambda *a: None
    c.connect("h", 60, start_loop=False)
    port.write_blocks = True
    t0 = port.clock.now
    pid = c.publish("t", "x", qos=1)
    took = port.clock.now - t0
    print("\naccepted publish, write never completes: returned after %d ms (bound 2000)" % took)
    assert pid == 1 and took <= 2000 and c.pending() == 1 and not c.connected()
    port.write_blocks = False
    assert c.reconnect() == 0 and c.session_present  # the broker kept the session
    assert port.link.written[1] == b"\x3a\x06\x00\x01t\x00\x01x"  # DUP, same id
