"""Shared helpers for the paho-mqtt (v2 API) conformance scripts.

Each script is run by a Rust test as `python3 SCRIPT --port N`, must exit 0
on success and print what went wrong otherwise. Every wait has a timeout.
"""

import argparse
import queue
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.client import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

WAIT = 5.0


def args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    for name in extra or []:
        p.add_argument(name)
    return p.parse_args()


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Client:
    """A paho client with a message queue and blocking helpers."""

    def __init__(self, a, client_id=None, clean_start=True, session_expiry=None, props=None):
        self.id = client_id or "paho-" + uuid.uuid4().hex[:8]
        self.c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=self.id, protocol=mqtt.MQTTv5)
        self.msgs = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.c.on_connect = lambda c, u, flags, rc, p: self.connack.put((flags, rc, p))
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put((mid, rcs))
        cp = props or Properties(PacketTypes.CONNECT)
        if session_expiry is not None:
            cp.SessionExpiryInterval = session_expiry
        self.c.connect(a.host, a.port, keepalive=30, clean_start=clean_start, properties=cp)
        self.c.loop_start()
        try:
            self.flags, self.rc, self.props = self.connack.get(timeout=WAIT)
        except queue.Empty:
            fail(f"{self.id}: no CONNACK")
        check(not self.rc.is_failure, f"{self.id}: CONNACK {self.rc}")

    def subscribe(self, topic, qos=1, options=None, props=None):
        opts = options or SubscribeOptions(qos=qos)
        rc, mid = self.c.subscribe(topic, options=opts, properties=props)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic}: {rc}")
        try:
            _, rcs = self.subacks.get(timeout=WAIT)
        except queue.Empty:
            fail(f"{self.id}: no SUBACK for {topic}")
        check(not rcs[0].is_failure, f"SUBACK {topic}: {rcs[0]}")
        return rcs

    def publish(self, topic, payload, qos=1, retain=False, props=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        info.wait_for_publish(timeout=WAIT)
        check(info.is_published(), f"{self.id}: publish to {topic} not acknowledged")

    def get(self, timeout=WAIT):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            fail(f"{self.id}: no message within {timeout}s")

    def nothing(self, timeout=0.7):
        try:
            m = self.msgs.get(timeout=timeout)
            fail(f"{self.id}: unexpected message on {m.topic}: {m.payload!r}")
        except queue.Empty:
            pass

    def drain(self, timeout=0.7):
        out = []
        while True:
            try:
                out.append(self.msgs.get(timeout=timeout))
            except queue.Empty:
                return out

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def publish_props(**kw):
    p = Properties(PacketTypes.PUBLISH)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def ok(name):
    print("OK", name, flush=True)
    sys.exit(0)
