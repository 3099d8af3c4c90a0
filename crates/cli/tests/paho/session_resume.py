"""Session resume: QoS 1 messages published while a persistent session is
offline are delivered after reconnect, with Session Present set."""
from lmq_paho import *

a = args()
cid = "paho-resume-" + uuid.uuid4().hex[:6]
c = Client(a, client_id=cid, clean_start=True, session_expiry=300)
c.subscribe("paho/resume", 1)
c.close()
pub = Client(a)
for i in range(5):
    pub.publish("paho/resume", str(i).encode())
c = Client(a, client_id=cid, clean_start=False, session_expiry=300)
check(c.flags.session_present, "Session Present not set")
got = [c.get().payload for _ in range(5)]
check(got == [b"0", b"1", b"2", b"3", b"4"], f"got {got}")
ok("session_resume")
