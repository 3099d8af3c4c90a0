//! A test-side MQTT 3.1.1 / 5.0 codec.
//!
//! Deliberately independent from `ledgermq-proto`: a broker checked only
//! through its own codec would share that codec's misreadings of the spec.
//! It encodes exactly what a test asks for (including things a correct
//! client never sends) and decodes what a broker sends, strictly enough to
//! notice a malformed answer.

#![allow(dead_code)]

/// MQTT 3.1.1 protocol level.
pub const V3: u8 = 4;
/// MQTT 5.0 protocol level.
pub const V5: u8 = 5;

/// Every MQTT 5.0 property, as plain optional fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Vec<u8>>,
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Vec<u8>>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub reason_string: Option<String>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub user_properties: Vec<(String, String)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub props: Props,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol level byte: 4 (3.1.1) or 5 (5.0); anything else for negative tests.
    pub level: u8,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub props: Props,
}

impl Connect {
    pub fn v5(client_id: &str) -> Connect {
        Connect {
            level: V5,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.to_string(),
            will: None,
            username: None,
            password: None,
            props: Props::default(),
        }
    }

    pub fn v3(client_id: &str) -> Connect {
        Connect {
            level: V3,
            ..Connect::v5(client_id)
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub pkid: u16,
    pub props: Props,
    pub payload: Vec<u8>,
}

impl Publish {
    pub fn new(topic: &str, payload: &[u8], qos: u8) -> Publish {
        Publish {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos,
            ..Default::default()
        }
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    pub pkid: u16,
    pub reason: u8,
    pub props: Props,
}

impl Ack {
    pub fn new(pkid: u16) -> Ack {
        Ack {
            pkid,
            ..Default::default()
        }
    }
}

// Test code: packet size does not matter, plain variants read better.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    ConnAck {
        session_present: bool,
        code: u8,
        props: Props,
    },
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    /// Filters with their raw subscription options byte.
    Subscribe {
        pkid: u16,
        props: Props,
        filters: Vec<(String, u8)>,
    },
    SubAck {
        pkid: u16,
        props: Props,
        codes: Vec<u8>,
    },
    Unsubscribe {
        pkid: u16,
        props: Props,
        filters: Vec<String>,
    },
    UnsubAck {
        pkid: u16,
        props: Props,
        codes: Vec<u8>,
    },
    PingReq,
    PingResp,
    Disconnect {
        reason: u8,
        props: Props,
    },
    Auth {
        reason: u8,
        props: Props,
    },
}

/// Subscription options byte (MQTT 5.0 §3.8.3.1).
pub fn sub_opts(qos: u8, no_local: bool, retain_as_published: bool, retain_handling: u8) -> u8 {
    qos | (u8::from(no_local) << 2) | (u8::from(retain_as_published) << 3) | (retain_handling << 4)
}

// ---------------------------------------------------------------- encoding

pub fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            break;
        }
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_bin(out: &mut Vec<u8>, b: &[u8]) {
    put_u16(out, b.len() as u16);
    out.extend_from_slice(b);
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bin(out, s.as_bytes());
}

pub fn encode_props(p: &Props) -> Vec<u8> {
    let mut b = Vec::new();
    let byte = |b: &mut Vec<u8>, id: u8, v: Option<u8>| {
        if let Some(v) = v {
            b.push(id);
            b.push(v);
        }
    };
    let u16p = |b: &mut Vec<u8>, id: u8, v: Option<u16>| {
        if let Some(v) = v {
            b.push(id);
            put_u16(b, v);
        }
    };
    let u32p = |b: &mut Vec<u8>, id: u8, v: Option<u32>| {
        if let Some(v) = v {
            b.push(id);
            put_u32(b, v);
        }
    };
    let strp = |b: &mut Vec<u8>, id: u8, v: &Option<String>| {
        if let Some(v) = v {
            b.push(id);
            put_str(b, v);
        }
    };
    let binp = |b: &mut Vec<u8>, id: u8, v: &Option<Vec<u8>>| {
        if let Some(v) = v {
            b.push(id);
            put_bin(b, v);
        }
    };
    byte(&mut b, 0x01, p.payload_format_indicator);
    u32p(&mut b, 0x02, p.message_expiry_interval);
    strp(&mut b, 0x03, &p.content_type);
    strp(&mut b, 0x08, &p.response_topic);
    binp(&mut b, 0x09, &p.correlation_data);
    for id in &p.subscription_identifiers {
        b.push(0x0B);
        put_varint(&mut b, *id as usize);
    }
    u32p(&mut b, 0x11, p.session_expiry_interval);
    strp(&mut b, 0x12, &p.assigned_client_identifier);
    u16p(&mut b, 0x13, p.server_keep_alive);
    strp(&mut b, 0x15, &p.authentication_method);
    binp(&mut b, 0x16, &p.authentication_data);
    byte(&mut b, 0x17, p.request_problem_information);
    u32p(&mut b, 0x18, p.will_delay_interval);
    byte(&mut b, 0x19, p.request_response_information);
    strp(&mut b, 0x1A, &p.response_information);
    strp(&mut b, 0x1C, &p.server_reference);
    strp(&mut b, 0x1F, &p.reason_string);
    u16p(&mut b, 0x21, p.receive_maximum);
    u16p(&mut b, 0x22, p.topic_alias_maximum);
    u16p(&mut b, 0x23, p.topic_alias);
    byte(&mut b, 0x24, p.maximum_qos);
    byte(&mut b, 0x25, p.retain_available);
    for (k, v) in &p.user_properties {
        b.push(0x26);
        put_str(&mut b, k);
        put_str(&mut b, v);
    }
    u32p(&mut b, 0x27, p.maximum_packet_size);
    byte(&mut b, 0x28, p.wildcard_subscription_available);
    byte(&mut b, 0x29, p.subscription_identifier_available);
    byte(&mut b, 0x2A, p.shared_subscription_available);
    let mut out = Vec::new();
    put_varint(&mut out, b.len());
    out.extend_from_slice(&b);
    out
}

/// Wraps a variable header + payload in a fixed header.
pub fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    put_varint(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

fn encode_ack(first: u8, a: &Ack, level: u8) -> Vec<u8> {
    let mut b = Vec::new();
    put_u16(&mut b, a.pkid);
    if level == V5 && (a.reason != 0 || a.props != Props::default()) {
        b.push(a.reason);
        if a.props != Props::default() {
            b.extend(encode_props(&a.props));
        }
    }
    frame(first, &b)
}

/// Encodes `p` for protocol level `level` (4 or 5).
pub fn encode(p: &Packet, level: u8) -> Vec<u8> {
    let v5 = level == V5;
    match p {
        Packet::Connect(c) => {
            let mut b = Vec::new();
            put_str(&mut b, "MQTT");
            b.push(c.level);
            let mut flags = 0u8;
            if c.username.is_some() {
                flags |= 0x80;
            }
            if c.password.is_some() {
                flags |= 0x40;
            }
            if let Some(w) = &c.will {
                flags |= 0x04 | (w.qos << 3);
                if w.retain {
                    flags |= 0x20;
                }
            }
            if c.clean_start {
                flags |= 0x02;
            }
            b.push(flags);
            put_u16(&mut b, c.keep_alive);
            let cv5 = c.level == V5;
            if cv5 {
                b.extend(encode_props(&c.props));
            }
            put_str(&mut b, &c.client_id);
            if let Some(w) = &c.will {
                if cv5 {
                    b.extend(encode_props(&w.props));
                }
                put_str(&mut b, &w.topic);
                put_bin(&mut b, &w.payload);
            }
            if let Some(u) = &c.username {
                put_str(&mut b, u);
            }
            if let Some(pw) = &c.password {
                put_bin(&mut b, pw);
            }
            frame(0x10, &b)
        }
        Packet::ConnAck {
            session_present,
            code,
            props,
        } => {
            let mut b = vec![u8::from(*session_present), *code];
            if v5 {
                b.extend(encode_props(props));
            }
            frame(0x20, &b)
        }
        Packet::Publish(p) => {
            let first = 0x30 | (u8::from(p.dup) << 3) | (p.qos << 1) | u8::from(p.retain);
            let mut b = Vec::new();
            put_str(&mut b, &p.topic);
            if p.qos > 0 {
                put_u16(&mut b, p.pkid);
            }
            if v5 {
                b.extend(encode_props(&p.props));
            }
            b.extend_from_slice(&p.payload);
            frame(first, &b)
        }
        Packet::PubAck(a) => encode_ack(0x40, a, level),
        Packet::PubRec(a) => encode_ack(0x50, a, level),
        Packet::PubRel(a) => encode_ack(0x62, a, level),
        Packet::PubComp(a) => encode_ack(0x70, a, level),
        Packet::Subscribe {
            pkid,
            props,
            filters,
        } => {
            let mut b = Vec::new();
            put_u16(&mut b, *pkid);
            if v5 {
                b.extend(encode_props(props));
            }
            for (f, o) in filters {
                put_str(&mut b, f);
                b.push(*o);
            }
            frame(0x82, &b)
        }
        Packet::SubAck { pkid, props, codes } => {
            let mut b = Vec::new();
            put_u16(&mut b, *pkid);
            if v5 {
                b.extend(encode_props(props));
            }
            b.extend_from_slice(codes);
            frame(0x90, &b)
        }
        Packet::Unsubscribe {
            pkid,
            props,
            filters,
        } => {
            let mut b = Vec::new();
            put_u16(&mut b, *pkid);
            if v5 {
                b.extend(encode_props(props));
            }
            for f in filters {
                put_str(&mut b, f);
            }
            frame(0xA2, &b)
        }
        Packet::UnsubAck { pkid, props, codes } => {
            let mut b = Vec::new();
            put_u16(&mut b, *pkid);
            if v5 {
                b.extend(encode_props(props));
                b.extend_from_slice(codes);
            }
            frame(0xB0, &b)
        }
        Packet::PingReq => vec![0xC0, 0],
        Packet::PingResp => vec![0xD0, 0],
        Packet::Disconnect { reason, props } => {
            let mut b = Vec::new();
            if v5 && (*reason != 0 || *props != Props::default()) {
                b.push(*reason);
                b.extend(encode_props(props));
            }
            frame(0xE0, &b)
        }
        Packet::Auth { reason, props } => {
            let mut b = vec![*reason];
            b.extend(encode_props(props));
            frame(0xF0, &b)
        }
    }
}

// ---------------------------------------------------------------- decoding

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, String>;

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }
    fn u8(&mut self) -> R<u8> {
        let v = *self.b.get(self.pos).ok_or("truncated u8")?;
        self.pos += 1;
        Ok(v)
    }
    fn u16(&mut self) -> R<u16> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.left() < n {
            return Err(format!("truncated: need {n}, have {}", self.left()));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn bin(&mut self) -> R<Vec<u8>> {
        let n = self.u16()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> R<String> {
        String::from_utf8(self.bin()?).map_err(|_| "invalid UTF-8 string".to_string())
    }
    fn varint(&mut self) -> R<u32> {
        let mut v = 0u32;
        for i in 0..4 {
            let b = self.u8()?;
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("variable byte integer longer than 4 bytes".into())
    }
    fn props(&mut self) -> R<Props> {
        let len = self.varint()? as usize;
        let mut r = Reader {
            b: self.take(len)?,
            pos: 0,
        };
        let mut p = Props::default();
        while r.left() > 0 {
            let id = r.u8()?;
            match id {
                0x01 => p.payload_format_indicator = Some(r.u8()?),
                0x02 => p.message_expiry_interval = Some(r.u32()?),
                0x03 => p.content_type = Some(r.str()?),
                0x08 => p.response_topic = Some(r.str()?),
                0x09 => p.correlation_data = Some(r.bin()?),
                0x0B => p.subscription_identifiers.push(r.varint()?),
                0x11 => p.session_expiry_interval = Some(r.u32()?),
                0x12 => p.assigned_client_identifier = Some(r.str()?),
                0x13 => p.server_keep_alive = Some(r.u16()?),
                0x15 => p.authentication_method = Some(r.str()?),
                0x16 => p.authentication_data = Some(r.bin()?),
                0x17 => p.request_problem_information = Some(r.u8()?),
                0x18 => p.will_delay_interval = Some(r.u32()?),
                0x19 => p.request_response_information = Some(r.u8()?),
                0x1A => p.response_information = Some(r.str()?),
                0x1C => p.server_reference = Some(r.str()?),
                0x1F => p.reason_string = Some(r.str()?),
                0x21 => p.receive_maximum = Some(r.u16()?),
                0x22 => p.topic_alias_maximum = Some(r.u16()?),
                0x23 => p.topic_alias = Some(r.u16()?),
                0x24 => p.maximum_qos = Some(r.u8()?),
                0x25 => p.retain_available = Some(r.u8()?),
                0x26 => p.user_properties.push((r.str()?, r.str()?)),
                0x27 => p.maximum_packet_size = Some(r.u32()?),
                0x28 => p.wildcard_subscription_available = Some(r.u8()?),
                0x29 => p.subscription_identifier_available = Some(r.u8()?),
                0x2A => p.shared_subscription_available = Some(r.u8()?),
                other => return Err(format!("unknown property id 0x{other:02X}")),
            }
        }
        Ok(p)
    }
}

fn decode_ack(r: &mut Reader, level: u8) -> R<Ack> {
    let pkid = r.u16()?;
    let mut a = Ack::new(pkid);
    if level == V5 && r.left() > 0 {
        a.reason = r.u8()?;
        if r.left() > 0 {
            a.props = r.props()?;
        }
    }
    Ok(a)
}

/// Decodes one packet a broker sends from the front of `buf`. `Ok(None)`
/// means more bytes are needed; on success returns the packet and the
/// number of bytes it used.
pub fn decode(buf: &[u8], level: u8) -> R<Option<(Packet, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let mut len = 0usize;
    let mut i = 1;
    loop {
        if i > 4 {
            return Err("remaining length longer than 4 bytes".into());
        }
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    if buf.len() < i + len {
        return Ok(None);
    }
    let first = buf[0];
    let mut r = Reader {
        b: &buf[i..i + len],
        pos: 0,
    };
    let v5 = level == V5;
    let flags = first & 0x0f;
    let expect_flags = |want: u8| -> R<()> {
        if flags != want {
            Err(format!(
                "packet type {} with flags {flags:#06b}",
                first >> 4
            ))
        } else {
            Ok(())
        }
    };
    let p = match first >> 4 {
        2 => {
            expect_flags(0)?;
            let ack_flags = r.u8()?;
            if ack_flags & 0xFE != 0 {
                return Err("CONNACK reserved flags set".into());
            }
            let code = r.u8()?;
            let props = if v5 && r.left() > 0 {
                r.props()?
            } else {
                Props::default()
            };
            Packet::ConnAck {
                session_present: ack_flags & 1 == 1,
                code,
                props,
            }
        }
        3 => {
            let qos = (flags >> 1) & 3;
            if qos == 3 {
                return Err("PUBLISH with QoS 3".into());
            }
            let topic = r.str()?;
            let pkid = if qos > 0 { r.u16()? } else { 0 };
            if qos > 0 && pkid == 0 {
                return Err("PUBLISH QoS>0 with packet id 0".into());
            }
            let props = if v5 { r.props()? } else { Props::default() };
            let payload = r.take(r.left())?.to_vec();
            Packet::Publish(Publish {
                dup: flags & 8 != 0,
                qos,
                retain: flags & 1 != 0,
                topic,
                pkid,
                props,
                payload,
            })
        }
        4 => {
            expect_flags(0)?;
            Packet::PubAck(decode_ack(&mut r, level)?)
        }
        5 => {
            expect_flags(0)?;
            Packet::PubRec(decode_ack(&mut r, level)?)
        }
        6 => {
            expect_flags(2)?;
            Packet::PubRel(decode_ack(&mut r, level)?)
        }
        7 => {
            expect_flags(0)?;
            Packet::PubComp(decode_ack(&mut r, level)?)
        }
        9 => {
            expect_flags(0)?;
            let pkid = r.u16()?;
            let props = if v5 { r.props()? } else { Props::default() };
            let codes = r.take(r.left())?.to_vec();
            Packet::SubAck { pkid, props, codes }
        }
        11 => {
            expect_flags(0)?;
            let pkid = r.u16()?;
            let props = if v5 { r.props()? } else { Props::default() };
            let codes = r.take(r.left())?.to_vec();
            Packet::UnsubAck { pkid, props, codes }
        }
        13 => {
            expect_flags(0)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(0)?;
            let (reason, props) = if v5 && r.left() > 0 {
                let reason = r.u8()?;
                let props = if r.left() > 0 {
                    r.props()?
                } else {
                    Props::default()
                };
                (reason, props)
            } else {
                (0, Props::default())
            };
            Packet::Disconnect { reason, props }
        }
        15 => {
            expect_flags(0)?;
            let reason = r.u8()?;
            let props = if r.left() > 0 {
                r.props()?
            } else {
                Props::default()
            };
            Packet::Auth { reason, props }
        }
        t => return Err(format!("unexpected packet type {t} from broker")),
    };
    if r.left() != 0 {
        return Err(format!("{} trailing bytes in {p:?}", r.left()));
    }
    Ok(Some((p, i + len)))
}
