"""Subscription identifiers come back on the messages they matched."""
from lmq_paho import *

a = args()
c = Client(a)
p1 = Properties(PacketTypes.SUBSCRIBE)
p1.SubscriptionIdentifier = 11
c.subscribe("paho/sid/+", 1, props=p1)
p2 = Properties(PacketTypes.SUBSCRIBE)
p2.SubscriptionIdentifier = 22
c.subscribe("paho/sid/only", 1, props=p2)
pub = Client(a)
pub.publish("paho/sid/x", b"x")
m = c.get()
check(m.properties.SubscriptionIdentifier == [11], f"ids {m.properties.SubscriptionIdentifier}")
pub.publish("paho/sid/only", b"both")
ids = []
for m in [c.get()] + c.drain():
    ids += m.properties.SubscriptionIdentifier
check(sorted(ids) == [11, 22], f"ids {ids}")
ok("subscription_identifiers")
