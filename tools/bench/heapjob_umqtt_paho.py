# The telemetry job (tools/bench/heapjob.py) for umqtt_paho without a thread: the cycle() API.
#   MICROPYPATH=<lib> micropython -X heapsize=N heapjob_umqtt_paho.py HOST PORT
# Connect, subscribe to a command topic at QoS 1, publish 200 QoS 1 readings of 64 bytes (each
# returns after its PUBACK); after every 20th, publish a QoS 1 command to our own command
# topic and read until it came back; disconnect. The last line "JOB OK <commands>" says all
# of it happened; anything else raises (no marker).
import sys

from umqtt_paho import Client

got = [0]


def on_cmd(client, payload, topic):
    got[0] += 1


def main(host, port):
    c = Client("heapjob", cycle_timeout=100, command_timeout=5000)
    c.connect(host, 30, port=port, start_loop=False)
    c.subscribe(b"job/cmd", on_cmd, 1)
    reading = bytearray(64)  # the one reading buffer, refilled in place
    sent = 0
    for i in range(1, 201):
        reading[0] = i & 0xFF
        c.publish(b"job/telemetry", reading, 1)
        if i % 20 == 0:
            c.publish(b"job/cmd", b"blink", 1)
            sent += 1
            for _ in range(50):  # 5 s at most
                if got[0] >= sent:
                    break
                c.cycle(100)
            if got[0] != sent:
                raise RuntimeError("command %d not received" % sent)
    c.disconnect()
    print("JOB OK", got[0])


main(sys.argv[1], int(sys.argv[2]))
