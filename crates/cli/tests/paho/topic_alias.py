"""Client-to-broker topic aliases: paho sends aliased publishes (set, then
alias only) and a subscriber sees every real topic. (paho 2.x does not
resolve inbound aliases, so the broker-to-client direction is checked by the
raw-client test broker_topic_aliases_respect_client_maximum_and_resolve.)"""
from lmq_paho import *

a = args()
sub = Client(a)
sub.subscribe("paho/alias/#", 1)
pub = Client(a)
tam = getattr(pub.props, "TopicAliasMaximum", 0)
check(tam >= 1, f"server Topic Alias Maximum {tam}")
topics = ["paho/alias/a", "paho/alias/b", "paho/alias/a", "paho/alias/b"]
pub.publish(topics[0], b"0", props=publish_props(TopicAlias=1))
pub.publish(topics[1], b"1", props=publish_props(TopicAlias=2))
pub.publish("", b"2", props=publish_props(TopicAlias=1))
pub.publish("", b"3", props=publish_props(TopicAlias=2))
for i, t in enumerate(topics):
    m = sub.get()
    check((m.topic, m.payload) == (t, str(i).encode()), f"message {i}: {m.topic} {m.payload!r}")
ok("topic_alias")
