//! Fixed keys and helpers shared by the SCAC tests. The keys are published
//! in docs/scac.md with the test vectors: never use them for anything else.
#![allow(dead_code)]

use std::sync::Arc;

use ledgermq_security::scac::keys::{InMemoryEd25519, InMemoryRsa};
use ledgermq_security::scac::{
    BrokerCredentials, BrokerHandshake, Channel, ClientHandshake, LocalKey, PeerKey, Suite,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;

pub const DEVICE_ED25519_SEED: [u8; 32] = [0x11; 32];
pub const BROKER_ED25519_SEED: [u8; 32] = [0x22; 32];
pub const CLIENT_RNG_SEED: [u8; 32] = [0xC1; 32];
pub const BROKER_RNG_SEED: [u8; 32] = [0xB2; 32];

pub const DEVICE_RSA_P: &str = "da2efe2f6f8fcb68e847c30d9c97d199168573d00250956fd80780c23e620e176a100445d21fc8a1f44299a1729c8f5b19f10f5bbb5a2c569b909837f97746c1795e316b6dbd0ed4b60c7d604a41f35fb363322ee274d8361f6faed68f5b8e8c40f17783f178c2fe0a5e5d0a3cd26c55869c304982d68366253cf21d9c988091";
pub const DEVICE_RSA_Q: &str = "b98e2d38b769002123b5e5821167aff1cbfbe9f25f8cc7de7740cc7c6741d97a7b1012ef8be66c66b2b48c10dee3f29952f9f8db83c665d2b606cac90dd8b8d0c7794c38c59f6286dacdea1d9195d2fac385fa2b7174826f56520110d12ac32d998ef35a6f5a5bf16d79a7cb23f037357d3bd0b2bbfd2bb54ed9cb3ab6dbd485";
pub const BROKER_RSA_P: &str = "e34b58ee44d1e74afe58026246fbff5b7cea49f6981cd408c6e6f7166aa8f47a8604a686ea0898cfdfeb080c2a6bc7fd9b5d410c5883a9fc3282b61ee1c03f135e10ed463db0a85d1a6479c9c298d94d5ead949ca595d53bfd091dbf34fad903f717d09fe72025ab493c7c3c902cdfcaad9a53b75b83b9120badcafdeb96368d";
pub const BROKER_RSA_Q: &str = "ca76817f2a10efd3b59e050b2526d9f32a8aba7dd3d190bc0d57be20a3e60b9596c177d5b6c3da0fbce0be4446b2cf0a306e30c258590117272dd7171c3cb449c01e23f73f491d46778b283b7c909118015a8ec50c112018c6fd47a6fd662077b7e2f60b272f42b614fbd1b4102724361d430b6b1e02fa8862df1355ba4b8921";

pub const DEFAULT_UID: &str = "sensor-42";
pub const COMPAT_UID: &str = "CLIENTE1";

/// One identity pair (device + broker) for a suite.
#[derive(Clone)]
pub struct Parties {
    pub suite: Suite,
    pub uid: &'static str,
    pub device: LocalKey,
    pub device_pub: PeerKey,
    pub broker: BrokerCredentials,
    pub broker_pub: PeerKey,
}

fn rsa(p: &str, q: &str) -> LocalKey {
    let key = InMemoryRsa::from_primes(&hex::decode(p).unwrap(), &hex::decode(q).unwrap()).unwrap();
    LocalKey::Rsa(Arc::new(key))
}

pub fn ed25519(seed: [u8; 32]) -> LocalKey {
    LocalKey::Ed25519(Arc::new(InMemoryEd25519::from_seed(&seed)))
}

pub fn parties(suite: Suite) -> Parties {
    let (uid, device, broker) = match suite {
        Suite::Default => (
            DEFAULT_UID,
            ed25519(DEVICE_ED25519_SEED),
            ed25519(BROKER_ED25519_SEED),
        ),
        Suite::RsaCompat => (
            COMPAT_UID,
            rsa(DEVICE_RSA_P, DEVICE_RSA_Q),
            rsa(BROKER_RSA_P, BROKER_RSA_Q),
        ),
    };
    let broker = BrokerCredentials::new(broker).unwrap();
    Parties {
        suite,
        uid,
        device_pub: device.public(),
        device,
        broker_pub: broker.public(),
        broker,
    }
}

pub fn rng(seed: [u8; 32]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(seed)
}

/// The bytes of a whole handshake and both channels.
pub struct Session {
    pub step1: Vec<u8>,
    pub step2: Vec<u8>,
    pub step3: Vec<u8>,
    pub client: Channel,
    pub broker: Channel,
}

pub fn handshake_seeded(p: &Parties, client_seed: [u8; 32], broker_seed: [u8; 32]) -> Session {
    let (client, step1) = ClientHandshake::start_with_rng(
        p.suite,
        p.uid,
        &p.device,
        &p.broker_pub,
        &mut rng(client_seed),
    )
    .unwrap();
    let (awaiting, step2) = BrokerHandshake::start_with_rng(
        p.suite,
        &p.broker,
        &p.device_pub,
        &step1,
        &mut rng(broker_seed),
    )
    .unwrap();
    let (step3, client) = client.on_step2(&step2).unwrap();
    let broker = awaiting.finish(&step3).unwrap();
    Session {
        step1,
        step2,
        step3,
        client,
        broker,
    }
}

pub fn handshake(p: &Parties) -> Session {
    let (client, step1) = ClientHandshake::start(p.suite, p.uid, &p.device, &p.broker_pub).unwrap();
    let (awaiting, step2) =
        BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &step1).unwrap();
    let (step3, client) = client.on_step2(&step2).unwrap();
    let broker = awaiting.finish(&step3).unwrap();
    Session {
        step1,
        step2,
        step3,
        client,
        broker,
    }
}
