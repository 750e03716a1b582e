# The rest of the public API on the real VM: MQTTError (code, str), a refused CONNECT,
# user name/password, will, MQTT 3.1, unsubscribe, an oversize message dropped, views.
# argv: HOST PORT AUTH_PORT   (AUTH_PORT: a mosquitto that knows alice/secret only)
from mpcommon import args, cycle_until, emit
from umqtt_paho import MQTTError, MQTTv31, Client, connack_string, error_string
from umqtt_paho import topic_matches_sub

host, port, rest = args()
auth_port = int(rest[0])

# -- MQTTError as the library raises it
e = MQTTError(17, "no PUBACK within command_timeout")
emit(
    "error",
    code=e.code,
    text=str(e),
    plain=str(MQTTError(7)),
    es=error_string(4),
    cs=connack_string(5),
    isinstance_exc=isinstance(e, Exception),
)

# -- refused CONNECT (bad password) -> MQTTError, get_rc() 5
c = Client("mp-auth")
c.set_username_pw("alice", "wrong")
try:
    c.connect(host, 30, port=auth_port, start_loop=False)
    refused = None
except MQTTError as err:
    refused = [err.code, str(err)]
emit("refused", error=refused, rc=c.get_rc(), connected=c.connected())
c.set_username_pw("alice", "secret")
emit("accepted", rc=c.connect(host, 30, port=auth_port, start_loop=False), repr=repr(c))
c.disconnect()

# -- MQTT 3.1, will, views, unsubscribe, oversize drop
c = Client("mp-v31", protocol=MQTTv31, max_packet_size=64)
c.set_will("mp/will", b"gone", 1, False)
c.deliver_views = True
got = []


def on(client, payload, topic):
    got.append((bytes(topic), bytes(payload), type(payload).__name__))


c.subscribe("mp/misc/+", on, 1)
c.connect(host, 30, port=port, start_loop=False)
c.publish("mp/misc/a", "str payload", 1)
c.publish(b"mp/misc/big", b"y" * 200, 1)  # larger than max_packet_size: dropped
c.publish("mp/misc/n", 42, 1)
cycle_until(c, lambda: len(got) >= 2, 3000)
cycle_until(c, lambda: False, 200)
c.unsubscribe("mp/misc/+")
c.publish("mp/misc/a", "after unsubscribe", 1)
cycle_until(c, lambda: False, 300)
emit(
    "misc",
    got=[[t.decode(), p.decode(), k] for t, p, k in got],
    oversize_dropped=c.oversize_dropped,
    unhandled=c.unhandled,
    match=topic_matches_sub("a/+/c", "a/b/c"),
    nomatch=topic_matches_sub("a/#", "b"),
)
try:
    c.publish("bad/+/topic", b"", 0)
    bad = None
except ValueError as err:
    bad = str(err)
emit("bad_topic", error=bad)
c.disconnect()
try:
    c.publish("mp/misc/a", b"x", 1)
    after = None
except MQTTError as err:
    after = err.code
emit("after_disconnect", code=after)
emit("end")
