"""Prove that the broker fixtures really behave as advertised.

Uses paho-mqtt (a known-good client), the mosquitto_pub/mosquitto_sub CLI and
hand-made MQTT packets, so these tests do not depend on umqtt_paho at all.
"""

import queue
import socket
import ssl
import struct
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest

from brokers import Mosquitto, _port_accepts, free_port

TIMEOUT = 5


class Paho:
    """A connected paho-mqtt client with blocking helpers for tests."""

    def __init__(self, broker, client_id="", clean_session=True, username=None,
                 password=None, ca=None, host=None):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id, clean_session=clean_session)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=ca)
        self.messages = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        # paho's loop thread reconnects by itself; keep that quick for restarts.
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = lambda client, userdata, msg: self.messages.put(msg)
        self.client.connect(host or broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT), "no CONNACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.reason_code = reason_code
        self.session_present = flags.session_present
        self._connected.set()

    def subscribe(self, topic, qos=0):
        self._subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self._subscribed.wait(TIMEOUT), "no SUBACK"

    def publish(self, topic, payload, qos=0, retain=False):
        self.client.publish(topic, payload, qos, retain).wait_for_publish(TIMEOUT)

    def receive(self):
        return self.messages.get(timeout=TIMEOUT)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def round_trip(broker, **opts):
    sub = Paho(broker, **opts)
    pub = Paho(broker, **opts)
    try:
        assert sub.reason_code == 0 and pub.reason_code == 0
        sub.subscribe("test/+", qos=1)
        pub.publish("test/a", b"hello", qos=1)
        msg = sub.receive()
        assert (msg.topic, msg.payload) == ("test/a", b"hello")
    finally:
        sub.close()
        pub.close()


def mqtt_string(s):
    data = s.encode()
    return struct.pack("!H", len(data)) + data


def raw_connack(broker, username=None, password=None, context=None, server_hostname=None):
    """Send a bare MQTT 3.1.1 CONNECT and return the CONNACK return code."""
    flags = 0x02  # clean session
    payload = mqtt_string("raw-client")
    if username is not None:
        flags |= 0x80
        payload += mqtt_string(username)
    if password is not None:
        flags |= 0x40
        payload += mqtt_string(password)
    variable = mqtt_string("MQTT") + bytes([4, flags]) + struct.pack("!H", 10)
    body = variable + payload
    assert len(body) < 128  # single-byte remaining length is enough here
    with socket.create_connection((broker.host, broker.port), timeout=TIMEOUT) as sock:
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=server_hostname or broker.host)
        with sock:
            sock.sendall(bytes([0x10, len(body)]) + body)
            connack = sock.recv(4)
    assert connack[:2] == b"\x20\x02", connack
    return connack[3]


def test_free_port_is_bindable():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_mosquitto_round_trip(mosquitto):
    assert mosquitto.host == "127.0.0.1"
    assert _port_accepts(mosquitto.host, mosquitto.port)
    round_trip(mosquitto)
    assert "mosquitto version" in mosquitto.log_text()


def test_mosquitto_cli_round_trip(mosquitto):
    args = ["-h", mosquitto.host, "-p", str(mosquitto.port), "-t", "cli/t"]
    # Retained, so the subscriber cannot miss it whatever the timing.
    subprocess.run(["mosquitto_pub", *args, "-m", "from-cli", "-r", "-q", "1"],
                   check=True, timeout=TIMEOUT)
    out = subprocess.run(["mosquitto_sub", *args, "-C", "1", "-W", str(TIMEOUT)],
                         check=True, timeout=TIMEOUT + 2, capture_output=True, text=True)
    assert out.stdout == "from-cli\n"


def test_mosquitto_stops(mosquitto):
    mosquitto.stop()
    assert not mosquitto.running
    assert not _port_accepts(mosquitto.host, mosquitto.port)


def test_auth_right_password_accepted(mosquitto_auth):
    assert raw_connack(mosquitto_auth, "alice", "secret") == 0
    round_trip(mosquitto_auth, username="alice", password="secret")


def test_auth_wrong_password_or_anonymous_refused(mosquitto_auth):
    # CONNACK return code 5: not authorised.
    assert raw_connack(mosquitto_auth, "alice", "wrong") == 5
    assert raw_connack(mosquitto_auth, "bob", "secret") == 5
    assert raw_connack(mosquitto_auth) == 5
    client = Paho(mosquitto_auth, username="alice", password="wrong")
    try:
        assert client.reason_code.is_failure
        assert client.reason_code == "Not authorized"
    finally:
        client.close()


def test_tls_verified_connection(mosquitto_tls):
    context = ssl.create_default_context(cafile=mosquitto_tls.ca_path)
    # The certificate is valid for the name and for the IP address.
    assert raw_connack(mosquitto_tls, context=context, server_hostname="localhost") == 0
    assert raw_connack(mosquitto_tls, context=context, server_hostname="127.0.0.1") == 0
    round_trip(mosquitto_tls, ca=mosquitto_tls.ca_path, host="localhost")


def test_tls_wrong_ca_or_name_refused(mosquitto_tls):
    wrong = ssl.create_default_context(cafile=mosquitto_tls.wrong_ca_path)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        raw_connack(mosquitto_tls, context=wrong, server_hostname="localhost")
    right = ssl.create_default_context(cafile=mosquitto_tls.ca_path)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        raw_connack(mosquitto_tls, context=right, server_hostname="example.com")
    with pytest.raises(ssl.SSLCertVerificationError):
        Paho(mosquitto_tls, ca=mosquitto_tls.wrong_ca_path, host="localhost")


def test_tls_port_does_not_speak_plain_mqtt(mosquitto_tls):
    with pytest.raises((AssertionError, OSError)):
        raw_connack(mosquitto_tls)


def test_tls_client_certificate_required():
    with Mosquitto(tls=True, require_certificate=True) as broker:
        context = ssl.create_default_context(cafile=broker.ca_path)
        context.load_cert_chain(broker.client_cert_path, broker.client_key_path)
        assert raw_connack(broker, context=context, server_hostname="localhost") == 0
        # Without a client certificate the server aborts the TLS session
        # (with TLS 1.3 the client only notices on its first read).
        no_cert = ssl.create_default_context(cafile=broker.ca_path)
        with pytest.raises((ssl.SSLError, AssertionError, ConnectionError)):
            raw_connack(broker, context=no_cert, server_hostname="localhost")


def test_restart_keeps_port(mosquitto):
    port, pid = mosquitto.port, mosquitto.proc.pid
    # A client connected during the restart: the broker closes its end first,
    # leaving TIME_WAIT on the port, which must not stop the new broker.
    client = Paho(mosquitto)
    client._connected.clear()
    mosquitto.restart()
    try:
        assert mosquitto.port == port
        assert mosquitto.proc.pid != pid
        # The old client finds the broker again at the same address.
        assert client._connected.wait(TIMEOUT), "paho did not reconnect"
        assert client.reason_code == 0
    finally:
        client.close()
    round_trip(mosquitto)


def test_persistent_session_survives_restart(mosquitto_persist):
    # More messages than mosquitto's default max_queued_messages (1000).
    count = 1500
    sub = Paho(mosquitto_persist, client_id="persist-sub", clean_session=False)
    sub.subscribe("persist/t", qos=1)
    sub.close()

    pub = Paho(mosquitto_persist)
    for i in range(count):
        pub.client.publish("persist/t", str(i), qos=1)
    pub.publish("persist/retained", b"kept", qos=1, retain=True)
    pub.close()

    mosquitto_persist.restart()

    sub = Paho(mosquitto_persist, client_id="persist-sub", clean_session=False)
    try:
        assert sub.session_present
        received = [int(sub.receive().payload) for _ in range(count)]
        assert received == list(range(count))
        sub.subscribe("persist/retained")
        assert sub.receive().payload == b"kept"
    finally:
        sub.close()


def test_amqtt_round_trip(amqtt_broker):
    assert _port_accepts(amqtt_broker.host, amqtt_broker.port)
    round_trip(amqtt_broker)
    assert raw_connack(amqtt_broker) == 0
    assert "bind to 127.0.0.1" in amqtt_broker.log_text()


def test_acl_limits_topics():
    with Mosquitto(acl={None: ["topic readwrite open/#"]}) as broker:
        sub = Paho(broker)
        pub = Paho(broker)
        try:
            sub.subscribe("open/#", qos=1)
            sub.subscribe("closed/#", qos=1)
            # The denied publish is dropped silently; the allowed one arrives.
            pub.publish("closed/x", b"denied", qos=1)
            pub.publish("open/x", b"allowed", qos=1)
            assert sub.receive().payload == b"allowed"
            assert sub.messages.empty()
        finally:
            sub.close()
            pub.close()
