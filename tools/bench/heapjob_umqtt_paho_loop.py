# The telemetry job (tools/bench/heapjob.py) for umqtt_paho with its background loop thread.
#   MICROPYPATH=<lib> micropython -X heapsize=N heapjob_umqtt_paho_loop.py HOST PORT
# The job of heapjob_umqtt_paho.py, but the loop thread reads: it delivers the commands and
# the PUBACKs that publish() waits for. "JOB OK <commands>" last, or no marker.
import sys
import time

from umqtt_paho import Client

got = [0]


def on_cmd(client, payload, topic):
    got[0] += 1


def main(host, port):
    c = Client("heapjob", cycle_timeout=100, command_timeout=5000)
    c.connect(host, 30, port=port, start_loop=True)
    c.subscribe(b"job/cmd", on_cmd, 1)
    reading = bytearray(64)
    sent = 0
    for i in range(1, 201):
        reading[0] = i & 0xFF
        c.publish(b"job/telemetry", reading, 1)
        if i % 20 == 0:
            c.publish(b"job/cmd", b"blink", 1)
            sent += 1
            for _ in range(500):  # 5 s at most
                if got[0] >= sent:
                    break
                time.sleep_ms(10)
            if got[0] != sent:
                raise RuntimeError("command %d not received" % sent)
    c.disconnect(2000)
    print("JOB OK", got[0])


main(sys.argv[1], int(sys.argv[2]))
