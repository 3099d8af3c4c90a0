"""User properties, content type, response topic, correlation data,
payload format indicator and message expiry reach a subscriber unaltered."""
from lmq_paho import *

a = args()
sub = Client(a)
sub.subscribe("paho/props", 1)
pub = Client(a)
props = publish_props(
    UserProperty=[("a", "1"), ("b", "2"), ("a", "3")],
    ContentType="application/json",
    ResponseTopic="paho/props/reply",
    CorrelationData=b"\x00\x01corr",
    PayloadFormatIndicator=1,
    MessageExpiryInterval=120,
)
pub.publish("paho/props", b'{"v": 1}', qos=1, props=props)
m = sub.get()
p = m.properties
check(m.payload == b'{"v": 1}', f"payload {m.payload!r}")
check(p.UserProperty == [("a", "1"), ("b", "2"), ("a", "3")], f"user properties {p.UserProperty}")
check(p.ContentType == "application/json", f"content type {p.ContentType}")
check(p.ResponseTopic == "paho/props/reply", f"response topic {p.ResponseTopic}")
check(p.CorrelationData == b"\x00\x01corr", f"correlation data {p.CorrelationData!r}")
check(p.PayloadFormatIndicator == 1, "payload format indicator")
check(0 < p.MessageExpiryInterval <= 120, f"message expiry {p.MessageExpiryInterval}")
ok("properties_roundtrip")
