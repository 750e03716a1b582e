# umqtt_paho.paho: the paho-mqtt 1.x API (paho.mqtt.client) as a thin layer over the
# core umqtt_paho.client.Client. No second protocol implementation: every packet is the
# core's; this module only maps names, arguments and callbacks.
#
#     import umqtt_paho.paho as mqtt          # instead of import paho.mqtt.client as mqtt
#
# Mapping
# - One core Client per paho Client, made by the first connect()/connect_async() (the
#   core sizes its tables then: max_inflight_messages_set() must come before) and kept
#   across reconnects, so unacknowledged QoS 1/2 messages are resent with their ids.
# - The network loop is the core's cycle(): loop() runs one cycle; loop_forever() runs
#   cycles in the caller's thread and reconnects with paho's backoff; loop_start() runs
#   loop_forever() in a thread, as paho does. The core's own background loop is unused.
# - on_connect fires from the loop after each successful (re)connect, as in paho; the
#   core's aconnect_cb only records it. A refused CONNACK is reported the same way
#   (on_connect rc 1-5, then on_disconnect MQTT_ERR_CONN_REFUSED).
# - Messages: the core hands every message (topic and payload as views of its receive
#   buffer, deliver_views) to _on_core_message, which matches message_callback_add()
#   filters without allocating and builds one MQTTMessage (the only allocation per
#   message besides the topic str and payload bytes it holds).
# - subscribe()/unsubscribe(): one packet each through send_subscribe /
#   send_unsubscribe below; acks come back through the core's on_subscribe /
#   on_unsubscribe.
#   Like paho, nothing is renewed after a reconnect: subscribe in on_connect.
# - publish(): QoS 0 through core.publish; QoS 1/2 through core.publish(wait=False);
#   on_publish comes from the core after PUBACK / PUBCOMP.
# - Callback exceptions are caught by the core and reported through on_log: they never
#   end the loop (paho re-raises them unless suppress_exceptions is set).

try:
    from micropython import const
except ImportError:  # CPython
    const = int  # a function here would cost RAM on the board too

from .errors import MQTTError, connack_string, error_string  # noqa: F401
from .packet import filter_problem, matches, topic_matches_sub  # noqa: F401

MQTTv31 = const(3)
MQTTv311 = const(4)

MQTT_LOG_INFO = const(1)
MQTT_LOG_NOTICE = const(2)
MQTT_LOG_WARNING = const(4)
MQTT_LOG_ERR = const(8)
MQTT_LOG_DEBUG = const(16)

CONNACK_ACCEPTED = const(0)
CONNACK_REFUSED_PROTOCOL_VERSION = const(1)
CONNACK_REFUSED_IDENTIFIER_REJECTED = const(2)
CONNACK_REFUSED_SERVER_UNAVAILABLE = const(3)
CONNACK_REFUSED_BAD_USERNAME_PASSWORD = const(4)
CONNACK_REFUSED_NOT_AUTHORIZED = const(5)

MQTT_ERR_AGAIN = const(-1)
MQTT_ERR_SUCCESS = const(0)
MQTT_ERR_NOMEM = const(1)
MQTT_ERR_PROTOCOL = const(2)
MQTT_ERR_INVAL = const(3)
MQTT_ERR_NO_CONN = const(4)
MQTT_ERR_CONN_REFUSED = const(5)
MQTT_ERR_NOT_FOUND = const(6)
MQTT_ERR_CONN_LOST = const(7)
MQTT_ERR_TLS = const(8)
MQTT_ERR_PAYLOAD_SIZE = const(9)
MQTT_ERR_NOT_SUPPORTED = const(10)
MQTT_ERR_AUTH = const(11)
MQTT_ERR_ACL_DENIED = const(12)
MQTT_ERR_UNKNOWN = const(13)
MQTT_ERR_ERRNO = const(14)
MQTT_ERR_QUEUE_SIZE = const(15)
MQTT_ERR_KEEPALIVE = const(16)

_MAX_PAYLOAD = const(268435455)
_MS_STEP = const(100)  # sleep slices, so disconnect()/loop_stop() end a wait soon
# QoS 0 publishes held while a connection is being made, sent after its CONNACK; and
# QoS 0 on_publish calls held for the network loop (beyond it, called at once)
_HELD0_MAX = const(32)
_SENT0_MAX = const(64)
_THREAD_TIMEOUT = 0.25  # s per cycle in the loop_start() thread (loop_stop() latency)


class MQTTException(Exception):
    pass


class CallbackAPIVersion:
    """paho-mqtt 2.x's flag, accepted (never required). paho-mqtt's own enum members
    are accepted too, by name."""

    VERSION1 = 1
    VERSION2 = 2


def _api_version(v):
    # 1 or 2 if v is a CallbackAPIVersion (ours: an int; paho-mqtt's: an enum), else 0
    if v is None:
        return 0
    if type(v) is int:
        return v if v == 1 or v == 2 else 0
    name = getattr(v, "name", None)
    if name == "VERSION1":
        return 1
    if name == "VERSION2":
        return 2
    return 0


class ReasonCode:
    """What VERSION2 callbacks get for an MQTT 3 return code, as paho-mqtt 2.x: compares
    equal to its value (int) and to its name (str)."""

    def __init__(self, value, name):
        self.value = value
        self._name = name

    def getName(self):
        return self._name

    @property
    def is_failure(self):
        return self.value >= 0x80

    def __eq__(self, other):
        if isinstance(other, ReasonCode):
            return self.value == other.value
        if isinstance(other, str):
            return other == self._name
        return self.value == other

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return self.value

    def __str__(self):
        return self._name

    def __repr__(self):
        return "ReasonCode(%d, %r)" % (self.value, self._name)


# paho-mqtt 2.x's conversions for MQTT 3: CONNACK return code -> (value, name).
_CONNACK_REASONS = (
    (0, "Success"),
    (132, "Unsupported protocol version"),
    (133, "Client identifier not valid"),
    (136, "Server unavailable"),
    (134, "Bad user name or password"),
    (135, "Not authorized"),
)


def _connack_reason(rc):
    if 0 <= rc < len(_CONNACK_REASONS):
        v = _CONNACK_REASONS[rc]
        return ReasonCode(v[0], v[1])
    return ReasonCode(128, "Unspecified error")


def _suback_reason(code):
    if code < 3:
        return ReasonCode(code, "Granted QoS %d" % code)
    return ReasonCode(128, "Unspecified error")


def _disconnect_reason(rc):
    if rc == MQTT_ERR_SUCCESS:
        return ReasonCode(0, "Normal disconnection")
    if rc == MQTT_ERR_KEEPALIVE:
        return ReasonCode(141, "Keep alive timeout")
    if rc == MQTT_ERR_PROTOCOL:
        return ReasonCode(130, "Protocol error")
    return ReasonCode(128, "Unspecified error")


class ConnectFlags:
    """VERSION2 on_connect flags (paho-mqtt 2.x)."""

    def __init__(self, session_present):
        self.session_present = session_present


class DisconnectFlags:
    """VERSION2 on_disconnect flags: MQTT 3 brokers send no DISCONNECT, so always False."""

    def __init__(self, from_server=False):
        self.is_disconnect_packet_from_server = from_server


class MQTTMessage:
    """A received message: topic (str), payload (bytes), qos, retain, mid, dup."""

    __slots__ = ("mid", "topic", "payload", "qos", "retain", "dup")

    def __init__(self, mid=0, topic=""):
        self.mid = mid
        self.topic = topic
        self.payload = b""
        self.qos = 0
        self.retain = False
        self.dup = False

    def __repr__(self):
        return "<MQTTMessage %r, %d bytes>" % (self.topic, len(self.payload))  # not the data


class MQTTMessageInfo:
    """What publish() returns: unpacks as (rc, mid), as paho-mqtt's."""

    def __init__(self, client, mid, rc):
        self._client = client
        self.mid = mid
        self.rc = rc
        self._published = False

    def __iter__(self):
        return iter((self.rc, self.mid))

    def __getitem__(self, index):
        return (self.rc, self.mid)[index]

    def __len__(self):
        return 2

    def __str__(self):
        return str((self.rc, self.mid))

    def is_published(self):
        if self.rc == MQTT_ERR_QUEUE_SIZE:
            raise ValueError("Message is not queued due to ERR_QUEUE_SIZE")
        if self.rc == MQTT_ERR_AGAIN:
            return False
        if self.rc > 0:
            raise RuntimeError("Message publish failed: %s" % error_string(self.rc))
        return self._published

    def wait_for_publish(self, timeout=None):
        """Wait until on_publish would have fired for this message, or timeout (s).
        Drives the network loop itself unless a loop_start() thread does."""
        if self.is_published():
            return
        c = self._client
        port = c._port
        deadline = None
        if timeout is not None:
            deadline = port.ticks_add(port.ticks_ms(), int(timeout * 1000))
        while not self._published:
            left = 1000 if deadline is None else port.ticks_diff(deadline, port.ticks_ms())
            if left <= 0 or c._should_exit():
                return
            tid = c._forever_tid
            if tid is not None and tid != port.thread_id():
                port.sleep_ms(left if left < 10 else 10)  # loop_forever() reads
            elif c._loop(min(left, _MS_STEP) / 1000):
                port.sleep_ms(left if left < _MS_STEP else _MS_STEP)  # link down


_ARGS = (
    "client_id",
    "clean_session",
    "userdata",
    "protocol",
    "transport",
    "reconnect_on_failure",
    "manual_ack",
)
_EXTRA = ("callback_api_version", "max_packet_size", "outbox", "store")
_CALLBACKS = (
    "on_connect",
    "on_connect_fail",
    "on_disconnect",
    "on_message",
    "on_publish",
    "on_subscribe",
    "on_unsubscribe",
    "on_log",
)


class Client:
    """paho-mqtt 1.x's Client(client_id="", clean_session=None, userdata=None,
    protocol=MQTTv311, transport="tcp", reconnect_on_failure=True).

    paho-mqtt 2.x's form, Client(CallbackAPIVersion.VERSIONn, client_id, ...), and the
    keyword callback_api_version= are accepted; VERSION2 selects 2.x callback signatures.
    Extra keywords: max_packet_size (receive buffer of the core; larger messages are
    dropped and logged); outbox= and store= (store and forward, as the core's Client:
    docs/store-and-forward.md). connect_timeout (s) bounds connecting and every ack
    wait.
    """

    def __init__(self, *args, **kwargs):
        names = _ARGS
        if args and _api_version(args[0]):
            names = ("callback_api_version",) + _ARGS  # paho-mqtt 2.x positional order
        if len(args) > len(names):
            raise TypeError("too many arguments")
        a = {}
        for i in range(len(args)):
            a[names[i]] = args[i]
        for k in kwargs:
            if k in a:
                raise TypeError("argument given twice: " + k)
            if k not in _ARGS and k not in _EXTRA:
                raise TypeError("unexpected keyword argument: " + k)
            a[k] = kwargs[k]
        from .ports import select

        self._port = select()
        self._callback_api_version = a.get("callback_api_version")
        v = self._callback_api_version
        if v is not None and not _api_version(v):
            raise ValueError("Unsupported callback API version")
        self._v2 = _api_version(v) == 2
        transport = a.get("transport", "tcp")
        if transport.lower() != "tcp":
            raise ValueError("transport: tcp only")
        if a.get("manual_ack"):
            raise ValueError("manual_ack is not supported")
        self._reconnect_on_failure = a.get("reconnect_on_failure", True)
        self.max_packet_size = a.get("max_packet_size")
        self._outbox = a.get("outbox")  # store and forward, handed to the core
        self._store = a.get("store")
        self._lock = self._port.allocate_lock()  # does nothing where there are no threads
        self._terminate = False  # loop_stop() called
        self._thread_running = False  # the loop_start() thread
        self._thread_started = False
        self._thread_tid = None
        self._forever_tid = None  # the thread in loop_forever()
        self._loop_tid = None  # the thread inside a network loop call (_loop)
        self._setup(
            a.get("client_id", ""),
            a.get("clean_session"),
            a.get("userdata"),
            a.get("protocol", MQTTv311),
        )

    def _setup(self, client_id, clean_session, userdata, protocol):
        if protocol != MQTTv31 and protocol != MQTTv311:
            raise ValueError("protocol: MQTTv31 or MQTTv311 only")
        if clean_session is None:
            clean_session = True
        if not client_id:
            if not clean_session:
                raise ValueError("A client id must be provided if clean session is False.")
            if protocol == MQTTv31:
                # MQTT 3.1 has no broker-assigned ids: make one (at most 23 characters)
                import random

                client_id = "paho%08x%08x" % (random.getrandbits(32), random.getrandbits(32))
            else:
                client_id = ""  # the broker assigns one [MQTT-3.1.3-6]
        if isinstance(client_id, str):
            client_id = client_id.encode()
        self._client_id = client_id
        self._clean_session = clean_session
        self._userdata = userdata
        self._protocol = protocol
        self._core = None
        self._rebuild = False
        self._max_inflight = 20
        self._host = None
        self._port_no = 1883
        self._keepalive = 60
        self._username = None
        self._password = None
        self._will = None  # (topic, payload, qos, retain)
        self._ssl_ctx = None
        self._tls_insecure = False
        self._up = False  # connected, and on_disconnect not yet reported
        self._pending = None  # CONNACK return code whose on_connect is due
        self._session = 0
        self._async = False  # connect_async() done, connection still to be made
        self._opening = False  # a connection attempt (_open) is under way
        self._failed_link = None  # a connect whose link failed before CONNACK: to report
        self._disconnecting = False  # disconnect() called: loops end
        self._delay = None  # current reconnect delay (s); None: next is min_delay
        self._min_delay = 1
        self._max_delay = 120
        self._mid = 0  # ids for QoS 0 publishes (the core gives QoS 1/2 theirs)
        self._msg_cbs = []  # [filter bytes, callback]; replaced, never mutated
        self._infos = []  # MQTTMessageInfo of QoS 1/2 publishes awaiting their ack
        self._early = []  # ids acked before publish() recorded their info
        self._sent0 = []  # mids of QoS 0 messages sent, their on_publish still due
        self._held0 = []  # QoS 0 (topic, payload, retain, info) awaiting a CONNACK
        self._logger = None
        self.connect_timeout = 5.0
        self.suppress_exceptions = True

    # Callbacks: set them on the instance, or define them as methods of a subclass.
    on_connect = None
    on_connect_fail = None
    on_disconnect = None
    on_message = None
    on_publish = None
    on_subscribe = None
    on_unsubscribe = None
    on_log = None

    def reinitialise(self, client_id="", clean_session=True, userdata=None):
        """Back to the state of a new Client(client_id, clean_session, userdata):
        callbacks, settings and session are dropped (a connected client disconnects)."""
        if self._thread_started:
            self.loop_stop()
        core = self._core
        if core is not None:
            core.disconnect()
        for name in _CALLBACKS:
            try:
                delattr(self, name)  # the instance's; a subclass's methods stay
            except AttributeError:
                pass
        self._setup(client_id, clean_session, userdata, MQTTv311)

    def __repr__(self):
        return "<umqtt_paho.paho.Client %r>" % (self._client_id,)

    # ---- settings ------------------------------------------------------------------

    def max_inflight_messages_set(self, inflight):
        """Size of the core's in-flight table (QoS 1/2 publishes, subscribes and
        unsubscribes awaiting acks); fixed when connect() makes the core. 0 (paho: no
        limit) means 100."""
        if inflight < 0:
            raise ValueError("Invalid inflight.")
        self._max_inflight = inflight or 100
        if self._core is not None:
            self._rebuild = True  # a new core on the next connect()

    def max_queued_messages_set(self, queue_size):
        """Accepted; there is no queue beyond the in-flight table (publish() waits for a
        free slot, then returns MQTT_ERR_QUEUE_SIZE)."""
        if queue_size < 0:
            raise ValueError("Invalid queue size.")
        return self

    def message_retry_set(self, retry):
        """Accepted, no effect: unacknowledged messages are resent after a reconnect, as
        MQTT 3.1.1 requires [MQTT-4.4.0-1], not on a timer."""
        if retry < 0:
            raise ValueError("Invalid retry.")

    def reconnect_delay_set(self, min_delay=1, max_delay=120):
        """Backoff of loop_forever()/loop_start(): min_delay, doubling up to max_delay (s)."""
        with self._lock:
            self._min_delay = min_delay
            self._max_delay = max_delay
            self._delay = None

    def user_data_set(self, userdata):
        self._userdata = userdata

    def user_data_get(self):
        return self._userdata

    def username_pw_set(self, username, password=None):
        self._username = username
        self._password = password

    def will_set(self, topic, payload=None, qos=0, retain=False, properties=None):
        if topic is None or len(topic) == 0:
            raise ValueError("Invalid topic.")
        if qos < 0 or qos > 2:
            raise ValueError("Invalid QoS level.")
        if properties is not None:
            raise ValueError("Properties only apply to MQTT V5")
        topic = topic.encode() if isinstance(topic, str) else bytes(topic)
        self._will = (topic, _encode_payload(payload), qos, bool(retain))

    def will_clear(self):
        self._will = None
        if self._core is not None:
            self._rebuild = True  # the core keeps a will once set: a new core

    def tls_set(
        self,
        ca_certs=None,
        certfile=None,
        keyfile=None,
        cert_reqs=None,
        tls_version=None,
        ciphers=None,
        keyfile_password=None,
    ):
        """An ssl.SSLContext that verifies the broker (CERT_REQUIRED, host name) against
        ca_certs (or the system's CAs), with an optional client certificate."""
        import ssl

        if self._ssl_ctx is not None:
            raise ValueError("SSL/TLS has already been configured.")
        if tls_version is None:
            tls_version = getattr(ssl, "PROTOCOL_TLS_CLIENT", None)
        ctx = ssl.SSLContext(tls_version)
        if certfile is not None:
            if keyfile_password is not None:
                ctx.load_cert_chain(certfile, keyfile, keyfile_password)
            else:
                ctx.load_cert_chain(certfile, keyfile)
        if cert_reqs is None:
            cert_reqs = ssl.CERT_REQUIRED
        if cert_reqs == ssl.CERT_NONE:
            if hasattr(ctx, "check_hostname"):
                ctx.check_hostname = False
            self._tls_insecure = True  # asked for explicitly: the core may connect
        ctx.verify_mode = cert_reqs
        if ca_certs is not None:
            ctx.load_verify_locations(ca_certs)
        elif cert_reqs != ssl.CERT_NONE and hasattr(ctx, "load_default_certs"):
            ctx.load_default_certs()
        if ciphers is not None:
            ctx.set_ciphers(ciphers)
        self._ssl_ctx = ctx

    def tls_set_context(self, context=None):
        """Use an ssl.SSLContext of your own (a default one if None)."""
        if self._ssl_ctx is not None:
            raise ValueError("SSL/TLS has already been configured.")
        if context is None:
            import ssl

            context = ssl.create_default_context()
        self._ssl_ctx = context
        # A context that does not verify was the application's explicit choice.
        self._tls_insecure = getattr(context, "verify_mode", 2) == 0 or (
            getattr(context, "check_hostname", True) is False
        )

    def tls_insecure_set(self, value):
        """True: do not check the host name in the broker's certificate. Insecure."""
        if self._ssl_ctx is None:
            raise ValueError("Must configure SSL context before using tls_insecure_set.")
        self._tls_insecure = bool(value)
        if hasattr(self._ssl_ctx, "check_hostname"):
            self._ssl_ctx.check_hostname = not value

    def enable_logger(self, logger=None):
        """Also send log messages to a logging.Logger (needs the logging module)."""
        if logger is None:
            if self._logger is not None:
                return
            import logging  # cpython-only (or a port with logging)

            logger = logging.getLogger(__name__)
        self._logger = logger

    def disable_logger(self):
        self._logger = None

    # ---- connection ----------------------------------------------------------------

    def connect(self, host, port=1883, keepalive=60, bind_address="", bind_port=0,
                clean_start=None, properties=None):
        """Connect (blocking, CONNACK included, within connect_timeout); 0 on success.
        Raises OSError if the link cannot be made (DNS, TCP, TLS). Once it is made,
        the rest is reported from the loop, as in paho: a refused CONNACK returns 0
        and reaches on_connect (rc 1-5); a link that fails before CONNACK (closed, no
        CONNACK in time, garbage) returns 0 and reaches on_disconnect."""
        self._target(host, port, keepalive, bind_address, bind_port, clean_start, properties)
        return self.reconnect()

    def connect_async(self, host, port=1883, keepalive=60, bind_address="", bind_port=0,
                      clean_start=None, properties=None):
        """As connect(), but the connection is made by loop_forever()/loop_start()."""
        self._target(host, port, keepalive, bind_address, bind_port, clean_start, properties)
        self._disconnecting = False
        self._async = True
        return MQTT_ERR_SUCCESS

    def _target(self, host, port, keepalive, bind_address, bind_port, clean_start, properties):
        if host is None or len(host) == 0:
            raise ValueError("Invalid host.")
        if port <= 0:
            raise ValueError("Invalid port number.")
        if keepalive < 0:
            raise ValueError("Keepalive must be >=0.")
        if bind_address or bind_port:
            raise ValueError("bind_address is not supported")
        if clean_start is not None or properties is not None:
            raise ValueError("MQTT 5 only")
        self._make_core()
        self._port_no = port
        self._keepalive = keepalive
        self._host = host

    def reconnect(self):
        """Connect again with the previous parameters (raises OSError on failure)."""
        if self._host is None:
            raise ValueError("Invalid host.")
        self._disconnecting = False
        self._async = False
        return self._open()

    def _make_core(self):
        core = self._core
        if core is not None and not self._rebuild:
            return core
        if core is not None and core.pending():
            self._log(
                MQTT_LOG_WARNING,
                "new settings, new session: %d unacked messages dropped" % core.pending(),
            )
        from .client import Client as Core

        import sys

        host = sys.implementation.name == "cpython"  # RAM to spare
        size = self.max_packet_size
        if size is None:
            size = 65536 if host else 2048
        core = Core(
            self._client_id,
            self._clean_session,
            cycle_timeout=1000,
            command_timeout=int(self.connect_timeout * 1000),
            protocol=self._protocol,
            port=self._port,
            max_packet_size=size,
            send_buffer=4096 if host else 256,
            max_inflight=self._max_inflight,
            outbox=self._outbox,
            store=self._store,
        )
        core.deliver_views = True  # matched and copied here, once
        core.queue_offline = True  # keep QoS 1/2 publishes made while disconnected
        core.on_message = self._on_core_message
        core.on_publish = self._on_core_publish
        core.on_subscribe = self._on_core_subscribe
        core.on_unsubscribe = self._on_core_unsubscribe
        core.on_log = self._on_core_log
        self._core = core
        self._rebuild = False
        self._infos = []
        self._early = []
        return core

    def _open(self):
        # One connection attempt: 0 (on_connect due, rc 0 or a refusal) or raises OSError.
        core = self._make_core()
        if self._username is not None:
            core.set_username_pw(self._username, self._password)
        w = self._will
        if w is not None:
            core.set_will(w[0], w[1], w[2], w[3])
        core.tls_insecure = self._tls_insecure
        with self._lock:
            self._pending = None
        self._opening = True
        try:
            core.connect(
                self._host,
                self._keepalive,
                self._port_no,
                self._ssl_ctx,
                aconnect_cb=self._aconnect,
                start_loop=False,
            )
        except MQTTError as e:
            if e.code == MQTT_ERR_CONN_REFUSED:
                with self._lock:
                    self._pending = core.get_rc()
                    self._session = 0
                return MQTT_ERR_SUCCESS
            if core.last_error is not e:
                raise OSError(str(e))
            self._failed_after_connect(e)  # no CONNACK in time, or a protocol error
        except OSError as e:
            if core.last_error is not e:
                raise  # the link could not be made (DNS, TCP, TLS): raised, as paho
            self._failed_after_connect(e)  # e.g. the broker closed before CONNACK
        finally:
            self._opening = False
        return MQTT_ERR_SUCCESS

    def _failed_after_connect(self, e):
        # The link was up and CONNECT sent (the core's last_error is the failure that
        # closed it), but no connection came of it. paho's connect() returns once
        # CONNECT is sent, and the loop then reports the failure (on_disconnect) and
        # reconnects as for any lost link: so here.
        with self._lock:
            self._up = True  # the loop's _lost() reports it, once
            self._pending = None
            self._failed_link = e

    def _aconnect(self, core):
        with self._lock:
            self._up = True
            self._pending = 0
            self._session = 1 if core.session_present else 0
        self._send_held(core)

    def is_connected(self):
        core = self._core
        return self._up and core is not None and core.connected()

    def disconnect(self, reasoncode=None, properties=None):
        """Send DISCONNECT and close; on_disconnect(rc=0) fires (the broker does not
        publish the will). Ends loop_forever() and the loop_start() thread."""
        self._disconnecting = True
        self._async = False
        core = self._core
        with self._lock:
            was_up = self._up
            self._up = False
            self._pending = None
            self._held0 = []  # not sent: no connection came
        if core is not None:
            core.disconnect()
        if not was_up:
            return MQTT_ERR_NO_CONN
        self._call_disconnect(MQTT_ERR_SUCCESS)
        return MQTT_ERR_SUCCESS

    # ---- network loop --------------------------------------------------------------

    def loop(self, timeout=1.0, max_packets=1):
        """Handle at most one incoming packet (waiting up to timeout s) and send a
        PINGREQ when due. Returns MQTT_ERR_SUCCESS or the reason the link is down."""
        if timeout < 0:
            raise ValueError("Invalid timeout.")
        return self._loop(timeout)

    def _loop(self, timeout):
        tid = self._port.thread_id()
        outer = self._loop_tid  # (loop() from a callback: nested)
        self._loop_tid = tid  # callbacks run in this call: QoS 0 on_publish is deferred
        try:
            return self._loop_once(timeout)
        finally:
            self._loop_tid = outer

    def _loop_once(self, timeout):
        self._fire_sent()  # on_publish of QoS 0 messages sent since the last loop
        if self._disconnecting:
            self._settle()
            return MQTT_ERR_NO_CONN
        rc = self._fire_pending()
        if rc:
            return rc
        e = self._failed_link
        if e is not None:
            self._failed_link = None
            return self._lost(e)
        core = self._core
        if core is None or not core.connected():
            return self._lost(None)
        try:
            core.cycle(int(timeout * 1000))
        except Exception as e:
            return self._lost(e)
        return MQTT_ERR_SUCCESS

    def _fire_pending(self):
        with self._lock:
            rc = self._pending
            self._pending = None
        if rc is None:
            return MQTT_ERR_SUCCESS
        if rc == 0:
            self._delay = None  # backoff starts again from min_delay
        self._call_connect(self._session, rc)
        if rc:
            self._call_disconnect(MQTT_ERR_CONN_REFUSED)
            return MQTT_ERR_CONN_REFUSED
        return MQTT_ERR_SUCCESS

    def _lost(self, e):
        # The link is down: report it once per connection (not after disconnect()).
        with self._lock:
            fire = self._up and not self._disconnecting
            if fire:
                self._up = False
        if not fire:
            return MQTT_ERR_NO_CONN
        rc = MQTT_ERR_CONN_LOST
        if isinstance(e, MQTTError) and 0 < e.code <= MQTT_ERR_KEEPALIVE:
            if e.code != MQTT_ERR_NO_CONN:
                rc = e.code
        self._log(MQTT_LOG_INFO, "connection lost: %r" % (e,))
        self._call_disconnect(rc)
        return rc

    def _should_exit(self):
        return self._disconnecting or self._terminate

    def loop_forever(self, timeout=1.0, max_packets=1, retry_first_connection=False):
        """Run the network loop until disconnect(), reconnecting with backoff
        (reconnect_delay_set) whenever the link fails."""
        if timeout < 0:
            raise ValueError("Invalid timeout.")
        if self._host is None and not self._thread_running:
            raise ValueError("Invalid host.")
        self._forever_tid = self._port.thread_id()
        try:
            return self._forever(timeout, retry_first_connection)
        finally:
            self._forever_tid = None

    def _forever(self, timeout, retry_first_connection):
        while self._host is None and not self._should_exit():
            self._port.sleep_ms(_MS_STEP)  # loop_start() before connect()
        while self._async and not self._should_exit():
            try:
                self._opening = True  # (before _async goes: publish() holds QoS 0)
                self._async = False
                self._open()
            except Exception as e:
                self._async = True
                self._call_connect_fail()
                if not retry_first_connection:
                    raise
                self._log(MQTT_LOG_DEBUG, "connection failed, retrying: %r" % (e,))
                self._reconnect_wait()
        rc = MQTT_ERR_SUCCESS
        while not self._should_exit():
            rc = self._loop(timeout)
            if rc == MQTT_ERR_SUCCESS or self._should_exit():
                continue
            if not self._reconnect_on_failure:
                break
            self._reconnect_wait()
            if self._should_exit() or self._connected_elsewhere():
                continue
            try:
                self._open()
            except Exception as e:
                self._call_connect_fail()
                self._log(MQTT_LOG_DEBUG, "reconnect failed: %r" % (e,))
        if self._disconnecting:
            self._settle()
        return rc

    def _settle(self):
        # After disconnect(): a connection made meanwhile (by a loop thread that was
        # connecting) is closed too, without callbacks.
        core = self._core
        if core is not None and core.connected():
            core.disconnect()
        with self._lock:
            self._up = False
            self._pending = None

    def _connected_elsewhere(self):
        # connect() or reconnect() from another thread did it (on_connect is due).
        core = self._core
        return self._pending is not None or (core is not None and core.connected())

    def _reconnect_wait(self):
        with self._lock:
            d = self._delay
            d = self._min_delay if d is None else min(d * 2, self._max_delay)
            self._delay = d
        port = self._port
        deadline = port.ticks_add(port.ticks_ms(), int(d * 1000))
        while not self._should_exit() and not self._connected_elsewhere():
            left = port.ticks_diff(deadline, port.ticks_ms())
            if left <= 0:
                return
            port.sleep_ms(left if left < _MS_STEP else _MS_STEP)

    def loop_start(self):
        """Run loop_forever() in a thread (it reconnects, as paho's). MQTT_ERR_INVAL if
        already running."""
        port = self._port
        if port.start_thread is None:
            raise MQTTError(
                MQTT_ERR_NOT_SUPPORTED, "no threads: use loop() or loop_forever()"
            )
        if self._thread_running:
            return MQTT_ERR_INVAL
        self._terminate = False
        self._thread_running = True
        self._thread_started = True
        try:
            port.start_thread(self._thread_main, ())
        except Exception:
            self._thread_running = False
            raise
        return MQTT_ERR_SUCCESS

    def _thread_main(self):
        self._thread_tid = self._port.thread_id()
        try:
            self.loop_forever(_THREAD_TIMEOUT, retry_first_connection=True)
        except Exception as e:
            self._log(MQTT_LOG_ERR, "network thread ended: %r" % (e,))
        finally:
            self._thread_tid = None
            self._thread_running = False

    def loop_stop(self, force=False):
        """Stop the loop_start() thread (the connection stays up) and wait for it."""
        if not self._thread_started:
            return MQTT_ERR_INVAL
        self._thread_started = False
        self._terminate = True
        port = self._port
        if port.thread_id() != self._thread_tid:
            while self._thread_running:
                port.sleep_ms(5)
            self._terminate = False  # loop() / loop_forever() may run in this thread now
        return MQTT_ERR_SUCCESS

    # External event loops: the core writes every packet at once, so there is never
    # anything waiting to be written.

    def socket(self):
        core = self._core
        net = core._net if core is not None else None  # see README section 10
        return None if net is None else net.sock

    def want_write(self):
        return False

    def loop_read(self, max_packets=1):
        """The socket is readable: handle one packet."""
        return self._loop(0)

    def loop_write(self, max_packets=1):
        core = self._core
        if core is None or not core.connected():
            return MQTT_ERR_NO_CONN
        return MQTT_ERR_SUCCESS

    def loop_misc(self):
        """Call every few seconds: keepalive (and any packet that is already in)."""
        return self._loop(0)

    # ---- publish / subscribe -------------------------------------------------------

    def publish(self, topic, payload=None, qos=0, retain=False, properties=None):
        """Returns an MQTTMessageInfo (unpacks as (rc, mid)); rc MQTT_ERR_NO_CONN when
        not connected (the message is dropped)."""
        if topic is None or len(topic) == 0:
            raise ValueError("Invalid topic.")
        t = topic.encode() if isinstance(topic, str) else topic
        if b"+" in t or b"#" in t:
            raise ValueError("Publish topic cannot contain wildcards.")
        if qos < 0 or qos > 2:
            raise ValueError("Invalid QoS level.")
        payload = _encode_payload(payload)
        if len(payload) > _MAX_PAYLOAD:
            raise ValueError("Payload too large.")
        if properties is not None:
            raise ValueError("Properties only apply to MQTT V5")
        core = self._core
        if core is None and qos:
            core = self._make_core()  # a QoS 1/2 message may wait in it for connect()
        offline = core is None or not core.connected()
        if offline and qos == 0:
            info = MQTTMessageInfo(self, self._next_mid(), MQTT_ERR_NO_CONN)
            if self._async or self._opening:
                # A connection is being made (connect_async() and a loop, or the loop
                # reconnecting): as paho, the message goes out once it is up.
                with self._lock:
                    if len(self._held0) < _HELD0_MAX:
                        self._held0.append((t, payload, retain, info))
                        info.rc = MQTT_ERR_SUCCESS
                    else:
                        info.rc = MQTT_ERR_QUEUE_SIZE
            return info
        try:
            # Offline, the core drops it (ERR_NO_CONN) unless it keeps QoS 1/2 messages
            # for the next connection (queue_offline, README section 10).
            pid = core.publish(t, payload, qos, retain, wait=False)
        except MQTTError as e:
            rc = e.code
            if rc != MQTT_ERR_QUEUE_SIZE and rc != MQTT_ERR_PAYLOAD_SIZE:
                rc = MQTT_ERR_NO_CONN
            return MQTTMessageInfo(self, self._next_mid(), rc)
        except OSError:
            return MQTTMessageInfo(self, self._next_mid(), MQTT_ERR_CONN_LOST)
        if qos == 0:
            info = MQTTMessageInfo(self, self._next_mid(), MQTT_ERR_SUCCESS)
            info._published = True
            self._sent(info.mid)
            return info
        # As paho: MQTT_ERR_NO_CONN also for a message kept until connected
        info = MQTTMessageInfo(self, pid, MQTT_ERR_NO_CONN if offline else MQTT_ERR_SUCCESS)
        with self._lock:
            if pid in self._early:
                self._early.remove(pid)  # acked already
                info._published = True
            else:
                self._infos.append(info)
        return info

    def _sent(self, mid):
        # A QoS 0 message went out. As paho's: with a loop thread, or from inside a
        # callback (a network loop call), its on_publish comes from the loop after
        # publish() has returned (a program compares the mid publish() gave it);
        # otherwise publish() wrote it itself and calls on_publish at once.
        if not self._thread_running and self._port.thread_id() != self._loop_tid:
            self._call_publish(mid)
            return
        with self._lock:
            sent = self._sent0
            sent.append(mid)
            late = sent.pop(0) if len(sent) > _SENT0_MAX else None
        if late is not None:
            self._call_publish(late)  # nobody runs the loop: do not hold them forever

    def _fire_sent(self):
        if not self._sent0:
            return  # (no lock, no list swap: nothing allocated per loop)
        with self._lock:
            sent, self._sent0 = self._sent0, []
        for mid in sent:
            self._call_publish(mid)

    def _send_held(self, core):
        # After a CONNACK: the QoS 0 messages published while connecting, in order.
        while self._held0 and core.connected():
            with self._lock:
                if not self._held0:
                    return
                t, payload, retain, info = self._held0.pop(0)
            try:
                core.publish(t, payload, 0, retain)
            except Exception as e:  # the link failed again: the next CONNACK sends the rest
                self._log(MQTT_LOG_WARNING, "held QoS 0 message not sent: %r" % (e,))
                return
            info._published = True
            self._sent(info.mid)

    def _next_mid(self):
        with self._lock:
            m = self._mid + 1 if self._mid < 65535 else 1
            self._mid = m
        return m

    def subscribe(self, topic, qos=0, options=None, properties=None):
        """subscribe("a/b", qos), subscribe(("a/b", qos)) or subscribe([("a/b", qos),
        ...]) (one SUBSCRIBE). Returns (rc, mid); (MQTT_ERR_NO_CONN, None) offline."""
        if options is not None or properties is not None:
            raise ValueError("MQTT 5 only")
        pairs = None
        if isinstance(topic, tuple):
            topic, qos = topic
        if isinstance(topic, (str, bytes)):
            if qos < 0 or qos > 2:
                raise ValueError("Invalid QoS level.")
            if len(topic) == 0:
                raise ValueError("Invalid topic.")
            pairs = [(_filter(topic), qos)]
        elif isinstance(topic, list):
            if len(topic) == 0:
                raise ValueError("Empty topic list")
            pairs = []
            for t, q in topic:
                if q < 0 or q > 2:
                    raise ValueError("Invalid QoS level.")
                if t is None or not isinstance(t, (str, bytes)) or len(t) == 0:
                    raise ValueError("Invalid topic.")
                pairs.append((_filter(t), q))
        if pairs is None:
            raise ValueError("No topic specified, or incorrect topic type.")
        return self._send(pairs, True)

    def unsubscribe(self, topic, properties=None):
        """unsubscribe("a/b") or unsubscribe(["a/b", ...]) (one UNSUBSCRIBE)."""
        if topic is None:
            raise ValueError("Invalid topic.")
        filters = None
        if isinstance(topic, (str, bytes)):
            if len(topic) == 0:
                raise ValueError("Invalid topic.")
            filters = [_filter(topic)]
        elif isinstance(topic, list):
            filters = []
            for t in topic:
                if not isinstance(t, (str, bytes)) or len(t) == 0:
                    raise ValueError("Invalid topic.")
                filters.append(_filter(t))
        if filters is None:
            raise ValueError("No topic specified, or incorrect topic type.")
        return self._send(filters, False)

    def _send(self, arg, sub):
        core = self._core
        if core is None or not core.connected():
            return (MQTT_ERR_NO_CONN, None)
        try:
            if sub:
                return (MQTT_ERR_SUCCESS, send_subscribe(core, arg))
            return (MQTT_ERR_SUCCESS, send_unsubscribe(core, arg))
        except MQTTError as e:
            return (e.code if e.code == MQTT_ERR_QUEUE_SIZE else MQTT_ERR_NO_CONN, None)
        except OSError:
            return (MQTT_ERR_CONN_LOST, None)

    def message_callback_add(self, sub, callback):
        """callback(client, userdata, message) for messages matching the filter sub;
        those no such filter matches go to on_message."""
        if callback is None or sub is None:
            raise ValueError("sub and callback must both be defined.")
        f = _filter(sub)
        cbs = [e for e in self._msg_cbs if e[0] != f]
        cbs.append((f, callback))
        self._msg_cbs = cbs  # a new list: the loop may be iterating the old one

    def message_callback_remove(self, sub):
        if sub is None:
            raise ValueError("sub must defined.")
        f = sub.encode() if isinstance(sub, str) else bytes(sub)
        self._msg_cbs = [e for e in self._msg_cbs if e[0] != f]

    # ---- from the core -------------------------------------------------------------

    def _on_core_message(self, core, payload, topic):
        # topic and payload are views of the core's receive buffer (deliver_views).
        msg = MQTTMessage(core.last_mid, str(topic, "utf-8"))
        msg.payload = bytes(payload)
        msg.qos = core.last_qos
        msg.retain = core.last_retain == 1
        msg.dup = core.last_dup == 1
        cbs = self._msg_cbs
        n = len(topic)
        matched = False
        i = 0
        while i < len(cbs):
            e = cbs[i]
            i += 1
            if matches(e[0], topic, 0, n):
                matched = True
                self._call_message(e[1], msg)
        if not matched and self.on_message is not None:
            self._call_message(self.on_message, msg)

    def _call_message(self, fn, msg):
        try:
            fn(self, self._userdata, msg)
        except Exception as e:
            self._caught("on_message", e)

    def _on_core_publish(self, core, pid):
        with self._lock:
            infos = self._infos
            info = None
            for i in range(len(infos)):
                if infos[i].mid == pid:
                    info = infos.pop(i)
                    break
            if info is not None:
                info._published = True
            else:
                early = self._early
                if len(early) >= 8:
                    early.pop(0)
                early.append(pid)  # publish() has not recorded its info yet
        self._call_publish(pid)

    def _call_publish(self, mid):
        fn = self.on_publish
        if fn is None:
            return
        try:
            if self._v2:
                fn(self, self._userdata, mid, ReasonCode(0, "Success"), None)
            else:
                fn(self, self._userdata, mid)
        except Exception as e:
            self._caught("on_publish", e)

    def _on_core_subscribe(self, core, pid, granted):
        fn = self.on_subscribe
        if fn is None:
            return
        try:
            if self._v2:
                fn(self, self._userdata, pid, [_suback_reason(g) for g in granted], None)
            else:
                fn(self, self._userdata, pid, tuple(granted))
        except Exception as e:
            self._caught("on_subscribe", e)

    def _on_core_unsubscribe(self, core, pid):
        fn = self.on_unsubscribe
        if fn is None:
            return
        try:
            if self._v2:
                fn(self, self._userdata, pid, [], None)
            else:
                fn(self, self._userdata, pid)
        except Exception as e:
            self._caught("on_unsubscribe", e)

    def _on_core_log(self, core, level, text):
        self._log(level, text)

    def _call_connect(self, session, rc):
        fn = self.on_connect
        if fn is None:
            return
        try:
            if self._v2:
                fn(self, self._userdata, ConnectFlags(session == 1), _connack_reason(rc), None)
            else:
                fn(self, self._userdata, {"session present": session}, rc)
        except Exception as e:
            self._caught("on_connect", e)

    def _call_connect_fail(self):
        fn = self.on_connect_fail
        if fn is None:
            return
        try:
            fn(self, self._userdata)
        except Exception as e:
            self._caught("on_connect_fail", e)

    def _call_disconnect(self, rc):
        fn = self.on_disconnect
        if fn is None:
            return
        try:
            if self._v2:
                fn(self, self._userdata, DisconnectFlags(), _disconnect_reason(rc), None)
            else:
                fn(self, self._userdata, rc)
        except Exception as e:
            self._caught("on_disconnect", e)

    def _caught(self, name, e):
        self._log(MQTT_LOG_ERR, "Caught exception in %s: %r" % (name, e))

    def _log(self, level, text):
        fn = self.on_log
        logger = self._logger
        if fn is not None:
            try:
                fn(self, self._userdata, level, text)
            except Exception:
                pass
        if logger is not None:
            # logging levels: INFO and NOTICE 20, WARNING 30, ERR 40, DEBUG 10
            lv = 20 if level <= 2 else 30 if level == 4 else 40 if level == 8 else 10
            logger.log(lv, text)
        if fn is None and logger is None and (level == MQTT_LOG_WARNING or level == MQTT_LOG_ERR):
            print("umqtt_paho:", text)


def _encode_payload(payload):
    # As paho: str as UTF-8, int/float as their decimal text, None as empty.
    if payload is None:
        return b""
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, (bytes, bytearray)):
        return payload
    if isinstance(payload, (int, float)):
        return str(payload).encode()
    raise TypeError("payload must be a string, bytearray, int, float or None.")


def send_subscribe(core, filters):
    """One SUBSCRIBE of a list of (filter, qos) pairs through a core Client, without
    registering functions and without waiting: the SUBACK reaches the core's
    on_subscribe(client, pid, granted). Returns the packet id. Not renewed after a
    reconnect (as paho-mqtt: subscribe in on_connect)."""
    pairs = [(f.encode() if isinstance(f, str) else f, q) for f, q in filters]
    return core._command(8, pairs, 8 + sum(len(p[0]) + 3 for p in pairs), False)


def send_unsubscribe(core, filters):
    """One UNSUBSCRIBE of a list of filters, without waiting: the UNSUBACK reaches the
    core's on_unsubscribe(client, pid). Returns the packet id."""
    fs = [f.encode() if isinstance(f, str) else f for f in filters]
    return core._command(10, fs, 6 + sum(len(f) + 2 for f in fs), False)


def _filter(t):
    f = t.encode() if isinstance(t, str) else bytes(t)
    why = filter_problem(f)
    if why:
        from .errors import REASONS

        raise ValueError("Invalid subscription filter: %r %s" % (t, REASONS[why]))
    return f
