"""Request/response: the responder answers on the Response Topic with the
request's Correlation Data (MQTT 5.0 §4.10)."""
from lmq_paho import *

a = args()
responder = Client(a)
requester = Client(a)
responder.subscribe("paho/svc/req", 1)
reply_topic = f"paho/svc/reply/{requester.id}"
requester.subscribe(reply_topic, 1)


def serve():
    m = responder.msgs.get(timeout=WAIT)
    rp = publish_props(CorrelationData=m.properties.CorrelationData)
    responder.c.publish(m.properties.ResponseTopic, b"answer:" + m.payload, qos=1, properties=rp)


t = threading.Thread(target=serve, daemon=True)
t.start()
for i in range(3):
    corr = f"req-{i}".encode()
    requester.publish("paho/svc/req", f"q{i}".encode(), props=publish_props(ResponseTopic=reply_topic, CorrelationData=corr))
    r = requester.get()
    check(r.payload == f"answer:q{i}".encode(), f"reply {r.payload!r}")
    check(r.properties.CorrelationData == corr, f"correlation {r.properties.CorrelationData!r}")
    if i < 2:
        t = threading.Thread(target=serve, daemon=True)
        t.start()
ok("request_response")
