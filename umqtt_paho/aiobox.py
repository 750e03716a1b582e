# umqtt_paho.aiobox: messages() of umqtt_paho.aio, the messages of subscriptions made
# with function=None; loaded by the first such message or messages() call.

import asyncio

_MAX = 32  # unread messages kept; beyond that the oldest go


class Message:
    def __init__(self, topic, payload, qos, retain):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain


class Inbox:
    """`async for msg in client.messages()` (MicroPython has no async generators); ends
    when the client stops."""

    def __init__(self, c):
        self.c = c
        self.q = []
        self.ev = asyncio.Event()

    def put(self, topic, payload, qos, retain):
        if len(self.q) >= _MAX:
            self.q.pop(0)
        self.q.append(Message(topic, payload, qos, retain))
        self.ev.set()

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self.q:
            if self.c._task is None:
                raise StopAsyncIteration
            self.ev.clear()
            await self.ev.wait()
        return self.q.pop(0)
