"""Retain Handling 0/1/2 and Retain As Published."""
from lmq_paho import *

a = args()
pub = Client(a)
pub.publish("paho/rh/t", b"kept", retain=True)

c0 = Client(a)
c0.subscribe("paho/rh/t", options=SubscribeOptions(qos=1, retainHandling=0))
check(c0.get().payload == b"kept", "RH0 first")
c0.subscribe("paho/rh/t", options=SubscribeOptions(qos=1, retainHandling=0))
check(c0.get().payload == b"kept", "RH0 again")

c1 = Client(a)
c1.subscribe("paho/rh/t", options=SubscribeOptions(qos=1, retainHandling=1))
check(c1.get().retain, "RH1 new subscription gets retained")
c1.subscribe("paho/rh/t", options=SubscribeOptions(qos=1, retainHandling=1))
c1.nothing()

c2 = Client(a)
c2.subscribe("paho/rh/t", options=SubscribeOptions(qos=1, retainHandling=2))
c2.nothing()

rap = Client(a)
rap.subscribe("paho/rh/live", options=SubscribeOptions(qos=1, retainAsPublished=True, retainHandling=2))
norap = Client(a)
norap.subscribe("paho/rh/live", options=SubscribeOptions(qos=1, retainAsPublished=False, retainHandling=2))
pub.publish("paho/rh/live", b"r", retain=True)
check(rap.get().retain, "Retain As Published keeps RETAIN")
check(not norap.get().retain, "without RAP RETAIN is cleared")
ok("retain_handling")
