# The telemetry job (tools/bench/heapjob.py) for adafruit-circuitpython-minimqtt.
#   MICROPYPATH=<lib> micropython -X heapsize=N heapjob_minimqtt.py HOST PORT
# The job of heapjob_umqtt_paho.py: publish(qos=1) waits for its PUBACK itself, and a
# command that arrives meanwhile goes to on_message; loop() reads the rest. MiniMQTT takes
# only str topics and a bytes payload (not a bytearray): the one reading is a bytes object.
# "JOB OK <commands>" last, or no marker.
import socket
import sys


class _Typing:
    # adafruit_connection_manager imports these names on every interpreter but CircuitPython
    List = Optional = Tuple = Type = Union = None
    CircuitPythonSocketType = InterfaceType = SocketpoolModuleType = None
    SocketType = SSLContextType = None


sys.modules["typing"] = _Typing
sys.modules["circuitpython_typing"] = _Typing
sys.modules["circuitpython_typing.socket"] = _Typing


class _Socket:
    # A CircuitPython socketpool socket: connect((host, port)); the unix port's socket wants
    # a sockaddr from getaddrinfo. No recv_into: MiniMQTT reads with recv().
    def __init__(self, *args):
        s = self.s = socket.socket()
        self.settimeout = s.settimeout
        self.send = s.send
        self.recv = s.recv
        self.close = s.close

    def connect(self, addr):
        self.s.connect(socket.getaddrinfo(addr[0], addr[1])[0][-1])


class _Pool:
    # socket_pool= : what adafruit_connection_manager calls on it
    SOCK_STREAM = socket.SOCK_STREAM
    socket = _Socket

    def getaddrinfo(host, port, *args):
        return ((socket.AF_INET, socket.SOCK_STREAM, 0, "", (host, port)),)


from adafruit_minimqtt.adafruit_minimqtt import MQTT  # noqa: E402

got = [0]


def on_message(client, topic, message):
    got[0] += 1


def main(host, port):
    c = MQTT(broker=host, port=port, client_id="heapjob", keep_alive=30, socket_pool=_Pool,
             use_binary_mode=True, connect_retries=1)  # fmt: skip
    c.on_message = on_message
    c.connect()
    c.subscribe("job/cmd", 1)
    reading = bytes(64)
    sent = 0
    for i in range(1, 201):
        c.publish("job/telemetry", reading, False, 1)
        if i % 20 == 0:
            c.publish("job/cmd", b"blink", False, 1)
            sent += 1
            for _ in range(5):  # 5 s at most: loop(1) reads for 1 s
                if got[0] >= sent:
                    break
                c.loop(1)
            if got[0] != sent:
                raise RuntimeError("command %d not received" % sent)
    c.disconnect()
    print("JOB OK", got[0])


main(sys.argv[1], int(sys.argv[2]))
