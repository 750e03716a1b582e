# umqtt_paho.publish: paho-mqtt's one-shot helpers, single() and multiple(), over the
# paho-style Client of umqtt_paho.paho: connect, publish every message, wait until each
# is acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP), disconnect cleanly.
#
# As paho's, they block until done and reconnect (with backoff) if the link fails on
# the way; QoS 1/2 messages not yet acknowledged are resent then. Unlike paho's, all
# messages are sent at once rather than one after the other's ack (the in-flight table
# of the client bounds how many wait for acks at the same time).

from .paho import MQTTv311, Client, MQTTException, connack_string, _encode_payload


def _message(topic, payload=None, qos=0, retain=False):
    # One message as paho's publish() takes it (TypeError without a topic), checked
    # before connecting: publish() raises the same errors, but inside on_connect.
    if topic is None or len(topic) == 0:
        raise ValueError("Invalid topic.")
    t = topic.encode() if isinstance(topic, str) else topic
    if b"+" in t or b"#" in t:
        raise ValueError("Publish topic cannot contain wildcards.")
    if qos < 0 or qos > 2:
        raise ValueError("Invalid QoS level.")
    return [topic, _encode_payload(payload), qos, retain, False]  # last: accepted


def multiple(msgs, hostname="localhost", port=1883, client_id="", keepalive=60, will=None,
             auth=None, tls=None, protocol=MQTTv311, transport="tcp", proxy_args=None):
    """Publish a list of messages, then disconnect. Each is a dict {'topic', 'payload',
    'qos', 'retain'} (topic required) or a tuple/list (topic, payload, qos, retain).

    will: dict for Client.will_set(); auth: {'username', 'password'}; tls: dict for
    Client.tls_set() plus 'insecure', or an ssl.SSLContext. Raises OSError if the broker
    cannot be reached, MQTTException if it refuses the connection."""
    if proxy_args is not None:
        raise ValueError("proxy_args is not supported")
    todo = []
    for m in msgs:
        if isinstance(m, dict):
            todo.append(_message(**m))
        elif isinstance(m, (tuple, list)):
            todo.append(_message(*m))
        else:
            raise TypeError("message must be a dict, tuple, or list")
    if not todo:
        raise ValueError("msgs is empty")
    state = [0, None]  # acknowledged, connection error

    def on_connect(client, userdata, flags, rc):
        if rc:
            state[1] = MQTTException(connack_string(rc))
            client.disconnect()
            return
        for m in todo:
            if not m[4]:  # not yet accepted (a reconnect resends the accepted ones)
                m[4] = client.publish(m[0], m[1], m[2], m[3]).rc == 0

    def on_publish(client, userdata, mid):
        state[0] += 1
        if state[0] >= len(todo):
            client.disconnect()

    client = Client(client_id=client_id, protocol=protocol, transport=transport)
    client.on_connect = on_connect
    client.on_publish = on_publish
    if auth:
        username = auth.get("username")
        if not username:
            raise KeyError("The 'username' key was not found, this is required for auth")
        client.username_pw_set(username, auth.get("password"))
    if will is not None:
        client.will_set(**will)
    if tls is not None:
        if isinstance(tls, dict):
            tls = dict(tls)  # the caller's dict stays as it was
            insecure = tls.pop("insecure", False)
            client.tls_set(**tls)
            if insecure:
                client.tls_insecure_set(True)
        else:
            client.tls_set_context(tls)  # an ssl.SSLContext
    client.connect(hostname, port, keepalive)
    client.loop_forever()
    if state[1] is not None:
        raise state[1]


def single(topic, payload=None, qos=0, retain=False, hostname="localhost", port=1883,
           client_id="", keepalive=60, will=None, auth=None, tls=None, protocol=MQTTv311,
           transport="tcp", proxy_args=None):
    """Publish one message, then disconnect (see multiple())."""
    multiple([(topic, payload, qos, retain)], hostname, port, client_id, keepalive, will,
             auth, tls, protocol, transport, proxy_args)
