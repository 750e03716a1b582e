# The telemetry job (tools/bench/heapjob.py) for micropython-umqtt.simple.
#   MICROPYPATH=<lib> micropython -X heapsize=N heapjob_umqtt_simple.py HOST PORT
# The job of heapjob_umqtt_paho.py: publish(qos=1) waits for its PUBACK itself, and a
# command that arrives meanwhile goes to the callback; check_msg() polls for the rest.
# "JOB OK <commands>" last, or no marker.
import sys
import time

from umqtt.simple import MQTTClient

got = [0]


def on_cmd(topic, msg):
    got[0] += 1


def main(host, port):
    c = MQTTClient("heapjob", host, port, keepalive=30)
    c.set_callback(on_cmd)
    c.connect()
    c.subscribe(b"job/cmd", 1)
    reading = bytearray(64)
    sent = 0
    for i in range(1, 201):
        reading[0] = i & 0xFF
        c.publish(b"job/telemetry", reading, False, 1)
        if i % 20 == 0:
            c.publish(b"job/cmd", b"blink", False, 1)
            sent += 1
            for _ in range(500):  # 5 s at most
                if got[0] >= sent:
                    break
                c.check_msg()
                time.sleep_ms(10)
            if got[0] != sent:
                raise RuntimeError("command %d not received" % sent)
    c.disconnect()
    print("JOB OK", got[0])


main(sys.argv[1], int(sys.argv[2]))
