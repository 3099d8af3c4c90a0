"""Shared subscription: every message reaches exactly one group member and
both members get a share."""
from lmq_paho import *

a = args()
m1, m2 = Client(a), Client(a)
m1.subscribe("$share/workers/paho/jobs", 1)
m2.subscribe("$share/workers/paho/jobs", 1)
pub = Client(a)
for i in range(20):
    pub.publish("paho/jobs", str(i).encode())
got1 = [int(m.payload) for m in m1.drain()]
got2 = [int(m.payload) for m in m2.drain()]
check(sorted(got1 + got2) == list(range(20)), f"m1={got1} m2={got2}")
check(got1 and got2, f"not load-balanced: m1={got1} m2={got2}")
ok("shared_subscriptions")
