"""Will message with delay interval and properties, sent after an abrupt close."""
from lmq_paho import *
import socket

a = args()
watch = Client(a)
watch.subscribe("paho/will", 1)
w = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="paho-will", protocol=mqtt.MQTTv5)
wp = Properties(PacketTypes.WILLMESSAGE)
wp.WillDelayInterval = 1
wp.ContentType = "text/plain"
w.will_set("paho/will", b"bye", qos=1, properties=wp)
cp = Properties(PacketTypes.CONNECT)
cp.SessionExpiryInterval = 10
w.connect(a.host, a.port, keepalive=30, properties=cp)
w.loop(timeout=1.0)
start = time.time()
w.socket().shutdown(socket.SHUT_RDWR)  # abrupt: no DISCONNECT
m = watch.get(timeout=8)
check(m.payload == b"bye", f"will payload {m.payload!r}")
check(m.properties.ContentType == "text/plain", "will content type")
check(time.time() - start >= 0.8, "will sent before its delay")
ok("will_delay")
