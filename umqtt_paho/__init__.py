# umqtt_paho: a memory-frugal MQTT 3.1/3.1.1 client for MicroPython, CircuitPython and
# CPython, in the style of the Paho embedded C client.
#
# `import umqtt_paho` loads nothing more: the synchronous core (client, reader, session,
# codec) comes with the first of its names asked for (`from umqtt_paho import Client`),
# so the asyncio driver (`from umqtt_paho.aio import Client`) does not load it. Every
# other module is loaded on first use too: errors.py when an error is put into words,
# threadloop.py when the background loop starts, and the optional layers below when an
# application imports them.


def __getattr__(name):
    # Imported on first use only: boards that don't use them don't pay their RAM.
    if name == "ReconnectPolicy":
        from .reconnect import ReconnectPolicy

        return ReconnectPolicy
    if name == "connack_string" or name == "error_string":
        from . import errors

        return getattr(errors, name)
    if name[0] != name[0].lower() or name == "topic_matches_sub":
        # Client, RECOVERED, BREAK_LOOP, MQTTv31, MQTTv311, MQTTError,
        # topic_matches_sub: the synchronous core (client.py loads its modules one at
        # a time, collecting after each), loaded by the first of them asked for.
        import gc

        gc.collect()  # the application's leftovers: the core fills their holes
        from . import client

        try:
            v = globals()[name] = getattr(client, name)  # asked once: then the package's
            return v
        except AttributeError:
            pass
    # `from umqtt_paho import paho`: MicroPython asks the package first.
    try:
        return __import__("umqtt_paho." + name, None, None, (name,))
    except ImportError:
        raise AttributeError(name)
