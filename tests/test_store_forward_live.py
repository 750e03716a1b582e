"""Store and forward against a real mosquitto, through the fault proxy (CPython port).

The publisher logs every QoS 1/2 message in a FlashLog (a directory in tmp_path) and
keeps a window of it in the RAM Outbox (docs/store-and-forward.md). The link to the
broker goes through tests/faultproxy.py: an outage is the proxy ending every new
connection at once (start_outage / end_outage), a "reset" is the board losing power:
the Client and its FlashLog object are dropped without DISCONNECT and without sync, the
link goes silent (the proxy stalls it: the broker sees a half-open connection until the
new client takes the session over), and a NEW FlashLog + NEW Client open the same
directory. A separate subscriber connects straight to mosquitto (clean_session=False, subscribed
before anything is published) and counts what arrives.

- test_acceptance_1000_readings_outage_and_reset: 1,000 QoS 1 readings over 4 topics at
  a steady pace; an outage (3 s standing for a 2-minute one) with a reset in it; every
  reading arrives, first arrivals in order per topic; duplicates and flush time printed.
- test_backlog_flush_keeps_serving_inbound_and_keepalive: a flush of several hundred
  messages, slowed by the proxy to last longer than 1.5 x keepalive, does not starve a
  command sent to the publisher meanwhile, and the link is not dropped.
- test_qos2_reset_and_cuts_during_flush[cycle|loop]: 200 QoS 2 messages, random cuts
  during the flush and a reset in the middle of it: 0 lost, 0 duplicated (a duplicate
  mosquitto causes itself, shown by its log as in test_faults.py, is reported apart; a
  PUBLISH the client sends again after its PUBREL fails the test).

Run with -s to see the figures.
"""

import re
import threading
import time
from collections import Counter

import pytest

from faultproxy import UP, FaultPlan, FaultProxy
from livehelpers import wait_until
from test_faults import Recorder, broker_republished_after_pubrel, log_publishes
from umqtt_paho import Client, MQTTError, ReconnectPolicy
from umqtt_paho.flashlog import FlashLog

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.1"
CMD_MS = 3000
CYCLE_MS = 50


# ---- helpers -------------------------------------------------------------------------


def policy(blocking=True):
    return ReconnectPolicy(base_ms=50, cap_ms=300, blocking=blocking)


def power_cut(client, proxy, timeout=3.0):
    """The board loses power: its loop thread (if any) stops where it is, no DISCONNECT
    and no FIN or RST leave it, nothing is synced to flash. The proxy stalls the link
    both ways, so the broker sees a silent, half-open connection, as with a dead board,
    until the new client's CONNECT takes the session over. The caller then drops the
    Client and its FlashLog: whatever they held in RAM is gone."""
    proxy.stall()  # from now on nothing passes on the current connection
    client._looping = False  # the loop thread ends at its next step...
    client._stopped = True  # ...and a ReconnectPolicy in progress gives up
    client.reconnect = lambda: -1  # the dead board makes no new connection

    def drop_socket():
        net = client._net
        sock = getattr(net, "sock", None)
        if sock is not None:
            net.sock = None  # the loop thread's next read fails (ENOTCONN)
            sock.close()  # into the stalled proxy: the broker sees nothing

    drop_socket()
    # Nothing of the old client may touch the directory once the new log opens it.
    assert wait_until(lambda: not client._loop_running, timeout), "loop thread did not stop"
    if getattr(client._net, "sock", None) is not None:  # a reconnect under way
        proxy.stall()
        drop_socket()


def try_connect(client, port, keepalive, hook, start_loop=True):
    """One connect() attempt, as an application's main loop makes it; True if up."""
    try:
        client.connect(HOST, keepalive, port=port, loop_failure=hook, start_loop=start_loop)
        return True
    except (MQTTError, OSError):
        return False


def close_all(*clients):
    for c in clients:
        if c is None:
            continue
        try:
            c.disconnect(timeout=1000)
        except Exception:
            pass


def mosquitto_failures(log, client_id):
    """Lines where mosquitto dropped client_id for a keepalive timeout or an error."""
    cid = re.escape(client_id)
    rx = re.compile(r"^.*Client %s (?:has exceeded timeout|disconnected due to).*$" % cid, re.M)
    return rx.findall(log)


def client_republished_after_pubrel(log, client_id):
    """Message ids for which client_id sent a PUBLISH again after it had sent their
    PUBREL, per mosquitto's log. MQTT 3.1.1 4.3.3: the sender "MUST NOT re-send the
    PUBLISH once it has sent the corresponding PUBREL"; the broker, which released the
    message and answered PUBCOMP, takes such a PUBLISH for a new message."""
    cid = re.escape(client_id)
    rx = re.compile(
        r"Received PUBLISH from %s \(d\d, q2, r\d, m(\d+),|Received PUBREL from %s \(Mid: (\d+)\)"
        % (cid, cid)
    )
    released = set()
    bad = set()
    for m in rx.finditer(log):
        pub, rel = m.groups()
        if pub is not None:
            if int(pub) in released:
                bad.add(int(pub))
        else:
            released.add(int(rel))
    return bad


class Readings:
    """The subscriber's message function: payloads b"<topic>:<counter>", recorded in
    arrival order with the delivery's DUP flag and packet id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []  # (topic, counter, dup, mid, monotonic)
        self.odd = []

    def __call__(self, client, payload, topic):
        try:
            t, n = bytes(payload).decode().split(":")
            assert t == topic
            n = int(n)
        except Exception:
            with self.lock:
                self.odd.append((topic, bytes(payload)))
            return
        with self.lock:
            self.items.append((topic, n, client.last_dup, client.last_mid, time.monotonic()))

    def distinct(self):
        with self.lock:
            return len({(t, n) for t, n, _, _, _ in self.items})

    def analyse(self, topics, per_topic):
        """(lost {topic: [counters]}, out of order {topic: [(prev, n)]}, duplicates
        {(topic, n): deliveries}) over the first arrival of every counter."""
        with self.lock:
            items = list(self.items)
        lost, disorder = {}, {}
        for t in topics:
            first = []
            seen = set()
            for tt, n, _, _, _ in items:
                if tt == t and n not in seen:
                    seen.add(n)
                    first.append(n)
            missing = sorted(set(range(per_topic)) - seen)
            if missing:
                lost[t] = missing
            bad = [(a, b) for a, b in zip(first, first[1:]) if b <= a]
            if bad:
                disorder[t] = bad
        c = Counter((t, n) for t, n, _, _, _ in items)
        dups = {k: v for k, v in c.items() if v > 1}
        return lost, disorder, dups


def make_subscriber(mosquitto, client_id, filt, qos, readings):
    sub = Client(
        client_id,
        clean_session=False,
        command_timeout=CMD_MS,
        cycle_timeout=CYCLE_MS,
        max_inflight_in=4096,  # every QoS 2 id the broker may hold: no forgetting
    )
    sub.subscribe(filt, readings, qos)
    sub.connect(HOST, 10, port=mosquitto.port, loop_failure=policy())
    assert sub._handlers[0][3] == qos
    return sub


def make_publisher(client_id, logdir, **kw):
    kw.setdefault("command_timeout", CMD_MS)
    kw.setdefault("cycle_timeout", CYCLE_MS)
    log = FlashLog(logdir)
    return Client(client_id, clean_session=False, store=log, **kw), log


class Acks:
    """on_publish: the packet ids the broker acknowledged (with a flash log the packet
    id is a function of the message's seq: below 65,536 messages, pid == seq)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pids = set()
        self.times = {}

    def __call__(self, client, pid):
        with self.lock:
            self.pids.add(pid)
            self.times.setdefault(pid, time.monotonic())

    def all_of(self, seqs):
        with self.lock:
            return all(s in self.pids for s in seqs)

    def count_of(self, seqs):
        with self.lock:
            return sum(1 for s in seqs if s in self.pids)


# ======================================================================================
# a. The acceptance test
# ======================================================================================

TOPICS = ["dev/s%d" % k for k in range(4)]
N_READINGS = 1000
PER_TOPIC = N_READINGS // len(TOPICS)
PERIOD_S = 0.005  # a reading every 5 ms: 200 readings/s
BEFORE = 150  # readings while connected
OUTAGE = 600  # readings during the outage: 3 s here, standing for a 2-minute outage
RESET_AT = 450  # the reading (global index) before which the board resets
KEEPALIVE = 5


def test_acceptance_1000_readings_outage_and_reset(mosquitto, tmp_path):
    logdir = str(tmp_path / "telemetry")
    readings = Readings()
    sub = make_subscriber(mosquitto, "sf-sub", "dev/#", 1, readings)
    proxy = FaultProxy(mosquitto.port, name="pub-proxy").start()
    rec1, rec2 = Recorder(policy()), Recorder(policy())
    acks = Acks()
    pub, log = make_publisher("sf-pub", logdir)
    rec1.instrument(pub)
    pub.on_publish = acks
    topics_b = [t.encode() for t in TOPICS]
    t0 = time.monotonic()
    raised = []
    phases = {}
    pub2 = None
    try:
        assert try_connect(pub, proxy.port, KEEPALIVE, rec1.hook)
        queued_ret = Counter()
        next_try = 0.0
        seq_at_reconnect = None
        t_up = None
        tick = time.monotonic()
        for i in range(N_READINGS):
            if i == BEFORE:
                phases["outage_start"] = proxy.start_outage(cut=True)
            if i == RESET_AT:
                # The board resets in the middle of the outage, with a backlog.
                phases["reset"] = time.monotonic()
                backlog_at_reset = pub.pending()
                power_cut(pub, proxy)
                pub = None  # RAM is gone: the Client and its FlashLog
                del log
                pub2, log2 = make_publisher("sf-pub", logdir)
                rec2.instrument(pub2)
                pub2.on_publish = acks
                recovered = len(log2)
                pub = pub2
            if i == BEFORE + OUTAGE:
                phases["outage_end"] = proxy.end_outage()
            k = i % len(TOPICS)
            payload = b"%s:%d" % (topics_b[k], i // len(TOPICS))
            try:
                r = pub.publish(topics_b[k], payload, qos=1, wait=False)
            except (MQTTError, OSError) as e:  # must never happen: the log takes it
                raised.append((i, repr(e)))
                continue
            queued_ret[r == 0] += 1
            # The new client's first connect: retried from the main loop every 100 ms.
            if pub is pub2 and not pub.connected() and not pub._loop_running:
                now = time.monotonic()
                if now >= next_try:
                    next_try = now + 0.1
                    backlog_n = pub.pending()
                    if try_connect(pub, proxy.port, KEEPALIVE, rec2.hook):
                        t_up = time.monotonic()
                        seq_at_reconnect = log2.last_seq()
            tick += PERIOD_S
            d = tick - time.monotonic()
            if d > 0:
                time.sleep(d)
        t_published = time.monotonic()
        # Connected within ~100 ms of the outage's end, while readings went on; if not
        # yet, the application goes on trying (bounded).
        deadline = time.monotonic() + 5
        while seq_at_reconnect is None and time.monotonic() < deadline:
            backlog_n = pub.pending()
            if try_connect(pub, proxy.port, KEEPALIVE, rec2.hook):
                t_up = time.monotonic()
                seq_at_reconnect = log2.last_seq()
            else:
                time.sleep(0.1)
        assert seq_at_reconnect is not None, "the new client never connected: " + proxy.summary()
        backlog = range(1, seq_at_reconnect + 1)
        assert wait_until(lambda: acks.all_of(backlog), 20), (
            "backlog not acknowledged: %d of %d" % (acks.count_of(backlog), seq_at_reconnect)
        )
        t_backlog_acked = max(acks.times[s] for s in backlog)
        assert pub.flush(10000), "pending %d" % pub.pending()
        assert wait_until(lambda: readings.distinct() >= N_READINGS, 20)
        time.sleep(0.3)  # late duplicates
        t_end = time.monotonic()
    finally:
        close_all(pub, sub)
        proxy.close()

    lost, disorder, dups = readings.analyse(TOPICS, PER_TOPIC)
    n_dup = sum(v - 1 for v in dups.values())
    with readings.lock:
        received = len(readings.items)
        dup_flagged = sum(1 for it in readings.items if it[2])
    sent = log_publishes(mosquitto, "sf-pub", qos=1)
    resent = sum(1 for d, _, _, _ in sent if d)
    by_mid = {}
    for d, _, mid, _ in sent:
        by_mid.setdefault(mid, []).append(d)
    twice = sorted((mid, flags) for mid, flags in by_mid.items() if len(flags) > 1)
    flush_s = t_backlog_acked - phases["outage_end"]
    report = "\n".join(
        [
            "acceptance: %d QoS 1 readings over %d topics in %.1f s (publishing %.1f s)"
            % (N_READINGS, len(TOPICS), t_end - t0, t_published - t0),
            "  outage %.1f s (stands for 2 minutes), reset %.1f s into it with %d pending; "
            "the new FlashLog recovered %d unacknowledged"
            % (
                phases["outage_end"] - phases["outage_start"],
                phases["reset"] - phases["outage_start"],
                backlog_at_reset,
                recovered,
            ),
            "  publish(): returned 0 (queued) %d, a packet id %d, raised %d"
            % (queued_ret[True], queued_ret[False], len(raised)),
            "  reconnected %.0f ms after the outage; the backlog (%d messages, seqs up to %d) "
            "acknowledged %.2f s after the outage ended (%.2f s after the connect)"
            % (
                (t_up - phases["outage_end"]) * 1000,
                backlog_n,
                seq_at_reconnect,
                flush_s,
                t_backlog_acked - t_up,
            ),
            "  subscriber: %d deliveries, %d distinct, %d duplicates (%d with DUP set), "
            "lost %d, out of order %d"
            % (
                received,
                readings.distinct(),
                n_dup,
                dup_flagged,
                sum(len(v) for v in lost.values()),
                sum(len(v) for v in disorder.values()),
            ),
            "  duplicates (topic, counter: deliveries): %s" % (sorted(dups.items())[:20],),
            "  broker got %d PUBLISH from sf-pub, %d of them with DUP; packet ids it got more "
            "than once (their DUP flags): %s" % (len(sent), resent, twice[:20]),
            "  publisher failures before the reset %s, after %s; %s"
            % (rec1.kinds(), rec2.kinds(), proxy.summary()),
        ]
    )
    print("\n" + report)
    assert not raised, raised[:5]
    assert not rec1.foreign_errors() and not rec2.foreign_errors(), (
        rec1.describe_foreign() + rec2.describe_foreign()
    )
    assert proxy.events["outage_refused"] >= 5, proxy.summary()  # both clients tried
    assert not readings.odd, readings.odd[:5]
    assert not lost, "LOST: %r\n%s" % ({t: v[:10] for t, v in lost.items()}, report)
    assert not disorder, "OUT OF ORDER: %r\n%s" % (disorder, report)


# ======================================================================================
# b. A long flush keeps serving inbound traffic and keepalive
# ======================================================================================

B_BACKLOG = 300
B_KEEPALIVE = 2
B_DELAY_MS = 14  # every unit client -> broker held back: ~70 PUBLISH/s, ~4.2 s


def test_backlog_flush_keeps_serving_inbound_and_keepalive(mosquitto, tmp_path):
    readings = Readings()
    sub = make_subscriber(mosquitto, "sfb-sub", "bl/#", 1, readings)
    slow = FaultPlan(p_delay=1.0, delay_ms=(B_DELAY_MS, B_DELAY_MS), directions=(UP,))
    proxy = FaultProxy(mosquitto.port, plan=slow, armed=False, name="pub-proxy").start()
    rec = Recorder(policy())
    acks = Acks()
    pub, log = make_publisher("sfb-pub", str(tmp_path / "log"))
    rec.instrument(pub)
    pub.on_publish = acks
    commands = []  # (monotonic, payload, publisher's unacknowledged messages then)

    def on_command(client, payload, topic):
        commands.append((time.monotonic(), bytes(payload), client.pending()))

    pub.subscribe("cmd/sfb-pub", on_command, 1)
    try:
        assert try_connect(pub, proxy.port, B_KEEPALIVE, rec.hook)
        assert pub.publish("bl/t", b"bl/t:0", qos=1) == 1  # sent and acknowledged
        proxy.start_outage(cut=True)
        assert wait_until(lambda: not pub.connected(), 3)
        for i in range(1, B_BACKLOG + 1):
            assert pub.publish(b"bl/t", b"bl/t:%d" % i, qos=1, wait=False) == 0
        assert pub.pending() == B_BACKLOG
        proxy.arm()  # slow from now on
        failures_before = len(rec.failures)
        t_end_outage = proxy.end_outage()
        assert wait_until(pub.connected, 5), proxy.summary()
        t_up = time.monotonic()
        # The flush is under way: send the command once a tenth of it is through.
        assert wait_until(lambda: len(acks.pids) > B_BACKLOG // 10, 10)
        t_cmd = time.monotonic()
        sub.publish("cmd/sfb-pub", b"reboot", qos=1)
        assert wait_until(lambda: commands, 5), "command not delivered"
        assert pub.flush(20000), "pending %d" % pub.pending()
        t_flushed = max(acks.times.values())
        assert wait_until(lambda: readings.distinct() >= B_BACKLOG + 1, 10)
        failures_after = rec.failures[failures_before:]
        connected_throughout = pub.connected()
    finally:
        close_all(pub, sub)
        proxy.close()

    t_got, payload, pending_then = commands[0]
    latency = t_got - t_cmd
    flush_s = t_flushed - t_up
    lost, disorder, dups = readings.analyse(["bl/t"], B_BACKLOG + 1)
    ka_drops = mosquitto_failures(mosquitto.log_text(), "sfb-pub")
    print(
        "\nbounded flush: %d messages in %.2f s through a proxy holding each packet %d ms "
        "(keepalive %d s); reconnected %.0f ms after the outage"
        "\n  command delivered %.0f ms after it was sent, with %d messages still "
        "unacknowledged; failures during the flush %d; broker drops %s; "
        "subscriber duplicates %d; %s"
        % (
            B_BACKLOG,
            flush_s,
            B_DELAY_MS,
            B_KEEPALIVE,
            (t_up - t_end_outage) * 1000,
            latency * 1000,
            pending_then,
            len(failures_after),
            ka_drops,
            sum(v - 1 for v in dups.values()),
            proxy.summary(),
        )
    )
    assert payload == b"reboot" and len(commands) == 1
    assert flush_s > 1.5 * B_KEEPALIVE, "flush too short to prove anything: %.2f s" % flush_s
    assert t_got < t_flushed and pending_then > 0, "the command waited for the flush"
    assert latency < 1.0, "command took %.0f ms during the flush" % (latency * 1000)
    assert not failures_after and connected_throughout, [repr(e) for _, e in failures_after]
    assert not ka_drops
    assert not lost and not disorder


# ======================================================================================
# c. QoS 2: a reset in the middle of the flush, and cuts during it
# ======================================================================================

C_LIVE = 20  # sent while connected
C_TOTAL = 200
C_RESET_AFTER = 70  # acknowledged messages of the flush before the board resets
C_PLAN = FaultPlan(cut_bytes=(300, 1500))  # a cut every ~20-100 messages' worth
C_SEED = 20250101


def run_until(client, until, timeout):
    """Until until() or timeout. In cycle() mode this is the application's main loop
    (cycle() returns -1 while the non-blocking ReconnectPolicy waits or retries); with
    the background loop the application only waits."""
    if client._loop_running:
        return wait_until(until, timeout, step=0.005)
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            return False
        client.cycle(CYCLE_MS)
    return True


@pytest.mark.parametrize("mode", ["cycle", "loop"])
def test_qos2_reset_and_cuts_during_flush(mosquitto, tmp_path, mode):
    # cycle: no thread, the reset falls between two cycle() calls; loop: the background
    # loop thread is stopped wherever it is when the reset comes.
    logdir = str(tmp_path / "q2log")
    loop = mode == "loop"
    readings = Readings()
    sub = make_subscriber(mosquitto, "sfc-sub", "q2/#", 2, readings)
    proxy = FaultProxy(
        mosquitto.port, seed=C_SEED, plan=C_PLAN, armed=False, name="pub-proxy"
    ).start()
    rec1, rec2 = Recorder(policy(blocking=loop)), Recorder(policy(blocking=loop))
    acks = Acks()
    pub, log = make_publisher("sfc-pub", logdir)
    rec1.instrument(pub)
    pub.on_publish = acks
    pub2 = None
    state = {}
    try:
        assert try_connect(pub, proxy.port, 10, rec1.hook, start_loop=loop)
        for i in range(C_LIVE):
            pub.publish(b"q2/t", b"q2/t:%d" % i, qos=2, wait=False)
        assert run_until(pub, lambda: len(acks.pids) >= C_LIVE, 5)
        proxy.start_outage(cut=True)
        assert run_until(pub, lambda: not pub.connected(), 3)
        for i in range(C_LIVE, C_TOTAL):
            assert pub.publish(b"q2/t", b"q2/t:%d" % i, qos=2, wait=False) == 0
        assert pub.pending() == C_TOTAL - C_LIVE
        proxy.arm()  # random cuts from the first byte of the flush
        proxy.end_outage()
        t0 = time.monotonic()
        assert run_until(pub, lambda: len(acks.pids) >= C_LIVE + C_RESET_AFTER, 15), (
            "flush stalled: %d acks, %s" % (len(acks.pids), proxy.summary())
        )
        # The board resets in the middle of the flush.
        state["acked_before_reset"] = len(acks.pids)
        state["pending_before_reset"] = pub.pending()
        state["pubcomp_wait"] = sum(1 for s in pub.session.states if s == 3)  # _WAIT_PUBCOMP
        power_cut(pub, proxy)
        pub = None  # RAM is gone: the Client and its FlashLog
        del log
        pub2, log2 = make_publisher("sfc-pub", logdir)
        rec2.instrument(pub2)
        pub2.on_publish = acks
        state["recovered"] = len(log2)
        state["resent_acked"] = sum(1 for r in log2.pending() if r[0] in acks.pids)
        pub = pub2
        deadline = time.monotonic() + 10
        while not try_connect(pub, proxy.port, 10, rec2.hook, start_loop=loop):
            assert time.monotonic() < deadline, proxy.summary()
            time.sleep(0.05)
        assert run_until(pub, lambda: pub.pending() == 0, 20), "pending %d, %s" % (
            pub.pending(),
            proxy.summary(),
        )
        t_flushed = time.monotonic()
        proxy.disarm()
        assert wait_until(lambda: readings.distinct() >= C_TOTAL, 10)
        time.sleep(0.5)  # late duplicates
    finally:
        close_all(pub, sub)
        proxy.close()

    lost, disorder, dups = readings.analyse(["q2/t"], C_TOTAL)
    n_dup = sum(v - 1 for v in dups.values())
    log_text = mosquitto.log_text()
    broker_bad = broker_republished_after_pubrel(log_text, "sfc-sub")
    client_bad = client_republished_after_pubrel(log_text, "sfc-pub")
    with readings.lock:
        mids = {}
        for t, n, d, mid, _ in readings.items:
            mids.setdefault(n, []).append(mid)
    broker_dups = sum(len(v) - 1 for n, v in mids.items() if len(v) > 1 and set(v) & broker_bad)
    # pid == seq == counter + 1 here
    client_dups = sum(v - 1 for (t, n), v in dups.items() if n + 1 in client_bad)
    other_dups = n_dup - broker_dups - client_dups
    report = "\n".join(
        [
            "QoS 2, %s mode: %d messages (%d live, %d queued in an outage), flush with cuts "
            "%.1f s" % (mode, C_TOTAL, C_LIVE, C_TOTAL - C_LIVE, t_flushed - t0),
            "  reset after %d acknowledged (%d pending, %d awaiting PUBCOMP); the new "
            "FlashLog recovered %d unacknowledged, %d of them already acknowledged by the "
            "broker before the reset"
            % (
                state["acked_before_reset"],
                state["pending_before_reset"],
                state["pubcomp_wait"],
                state["recovered"],
                state["resent_acked"],
            ),
            "  subscriber: %d distinct, lost %d, out of order %d, duplicates %d: broker's "
            "(PUBLISH after its PUBREL) %d, the client's PUBLISH after its PUBREL %d, other %d"
            % (
                readings.distinct(),
                sum(len(v) for v in lost.values()),
                sum(len(v) for v in disorder.values()),
                n_dup,
                broker_dups,
                client_dups,
                other_dups,
            ),
            "  client re-published after PUBREL: %s" % sorted(client_bad)[:20],
            "  duplicates: %s" % sorted(dups.items())[:20],
            "  publisher failures %s / after the reset %s; %s"
            % (rec1.kinds(), rec2.kinds(), proxy.summary()),
        ]
    )
    print("\n" + report)
    assert not rec1.foreign_errors() and not rec2.foreign_errors(), (
        rec1.describe_foreign() + rec2.describe_foreign()
    )
    assert proxy.events["cut"] >= 2, "too few cuts during the flush: " + proxy.summary()
    assert not readings.odd
    assert not lost, "LOST %r\n%s" % (lost, report)
    assert not disorder, "OUT OF ORDER %r\n%s" % (disorder, report)
    assert other_dups == 0, "QoS 2 DUPLICATED\n" + report
    assert client_dups == 0, "QoS 2 DUPLICATED by the client after the reset\n" + report
