"""No Local: a client does not get its own messages back."""
from lmq_paho import *

a = args()
c = Client(a)
c.subscribe("paho/nolocal", options=SubscribeOptions(qos=1, noLocal=True))
c.publish("paho/nolocal", b"mine")
c.nothing()
other = Client(a)
other.publish("paho/nolocal", b"theirs")
m = c.get()
check(m.payload == b"theirs", f"payload {m.payload!r}")
ok("no_local")
