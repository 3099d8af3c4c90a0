//! The broker's end of a test connection: a raw socket speaking through
//! our codec, so a test sends exactly the packets it needs.

use bytes::BytesMut;
use ledgermq_agent::{Protocol, ReasonCode};
use ledgermq_proto::{decode, encode, Auth as AuthPacket, ConnAck, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One client connection, seen from the broker.
pub struct Peer {
    pub stream: TcpStream,
    buf: BytesMut,
    protocol: Option<Protocol>,
}

impl Peer {
    pub async fn accept(listener: &TcpListener) -> Peer {
        let (stream, _) = listener.accept().await.unwrap();
        Peer {
            stream,
            buf: BytesMut::new(),
            protocol: None,
        }
    }

    pub async fn read(&mut self) -> Packet {
        self.try_read()
            .await
            .expect("the client closed the connection")
    }

    /// The next packet, or `None` once the client closed the connection.
    pub async fn try_read(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = decode(&mut self.buf, self.protocol, 1 << 20).unwrap() {
                if let Packet::Connect(c) = &p {
                    self.protocol = Some(c.protocol);
                }
                return Some(p);
            }
            let n = self.stream.read_buf(&mut self.buf).await.ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    pub async fn write(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, self.protocol.unwrap(), &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    pub async fn connack(&mut self, reason: ReasonCode) {
        self.write(Packet::ConnAck(ConnAck {
            reason,
            ..ConnAck::default()
        }))
        .await;
    }

    /// Reads until an AUTH, returning the other packets read on the way.
    pub async fn read_auth(&mut self) -> (AuthPacket, Vec<Packet>) {
        let mut others = Vec::new();
        loop {
            match self.read().await {
                Packet::Auth(a) => return (a, others),
                other => others.push(other),
            }
        }
    }
}

pub async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}
