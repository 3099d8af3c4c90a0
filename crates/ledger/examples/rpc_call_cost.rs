//! How long can one `eth_call` at the JSON-RPC gas cap keep a thread busy?
//!
//! `cargo run --release -p ledgermq-ledger --example rpc_call_cost -- [GAS_CAP] [NAME_FILTER]`
//!
//! revm has no wall-clock limit, so the gas cap of the embedded node's
//! JSON-RPC (`RpcServerConfig::call_gas_cap`, `ledger_rpc_call_gas_cap`) is
//! what bounds the work of one call. This sends, over real HTTP to a real
//! node, init-code loops that spend all their gas on the cheapest work per
//! gas we know of — jumps, hashing, cold storage and account reads, and
//! the precompiles whose price per CPU second is lowest (ecrecover,
//! modexp, BN254 pairings, BLAKE2f, the KZG point evaluation) — and prints
//! the time each takes. docs/ledger.md quotes the results.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alloy_primitives::{hex, B256, U256};
use ledgermq_ledger::{
    ChainConfig, EmbeddedChain, LocalAccount, RpcServerConfig, SenderPolicy, Signer,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tiny EVM assembler: enough for "put this input in memory, then call
/// that precompile until the gas runs out".
#[derive(Default)]
struct Code(Vec<u8>);

impl Code {
    fn op(mut self, op: u8) -> Self {
        self.0.push(op);
        self
    }

    fn push(mut self, value: u64) -> Self {
        let bytes = value.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
        let len = 8 - skip;
        self.0.push(0x5f + len as u8); // PUSH<len>
        self.0.extend_from_slice(&bytes[skip..]);
        self
    }

    /// Writes `input` to memory at 0, 32 bytes at a time.
    fn memory(mut self, input: &[u8]) -> Self {
        for (i, chunk) in input.chunks(32).enumerate() {
            let mut word = [0u8; 32];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0.push(0x7f); // PUSH32
            self.0.extend_from_slice(&word);
            self = self.push(32 * i as u64).op(0x52); // MSTORE
        }
        self
    }

    /// `loop { body }`: a JUMPDEST here, a jump back after `body`.
    fn forever(self, body: impl FnOnce(Code) -> Code) -> Code {
        let start = self.0.len() as u64;
        let code = body(self.op(0x5b));
        code.push(start).op(0x56)
    }

    /// `STATICCALL(gas, address, 0, input_len, 0x1000, 64)` and drop the flag.
    fn static_call(self, address: u64, input_len: u64) -> Code {
        self.push(64)
            .push(0x1000)
            .push(input_len)
            .push(0)
            .push(address)
            .op(0x5a) // GAS
            .op(0xfa) // STATICCALL
            .op(0x50) // POP
    }

    fn hex(&self) -> String {
        hex::encode_prefixed(&self.0)
    }
}

fn word(v: u64) -> [u8; 32] {
    U256::from(v).to_be_bytes()
}

fn dec(s: &str) -> [u8; 32] {
    U256::from_str_radix(s, 10).unwrap().to_be_bytes()
}

fn workloads() -> Vec<(&'static str, Code)> {
    let mut out = vec![
        ("JUMPDEST/JUMP loop", Code::default().forever(|c| c)),
        (
            "KECCAK256 of 32 bytes",
            Code::default().forever(|c| c.push(32).push(0).op(0x20).op(0x50)),
        ),
        (
            "SLOAD of ever new cold slots",
            Code::default().forever(|c| c.op(0x5a).op(0x54).op(0x50)),
        ),
        (
            "BALANCE of ever new cold accounts",
            Code::default().forever(|c| c.op(0x5a).op(0x31).op(0x50)),
        ),
    ];

    // ecrecover of a valid signature.
    let key = LocalAccount::random();
    let hash = B256::repeat_byte(7);
    let sig = key.sign_hash(&hash).unwrap();
    let mut input = hash.to_vec();
    input.extend_from_slice(&word(27 + sig[64] as u64));
    input.extend_from_slice(&sig[..64]);
    out.push((
        "ecrecover (0x01)",
        Code::default()
            .memory(&input)
            .forever(|c| c.static_call(1, 128)),
    ));

    // modexp: all-ones base and exponent, even modulus, several sizes.
    for size in [32usize, 128, 512] {
        let mut input = Vec::new();
        input.extend_from_slice(&word(size as u64));
        input.extend_from_slice(&word(32));
        input.extend_from_slice(&word(size as u64));
        input.extend(std::iter::repeat_n(0xff, size));
        input.extend(std::iter::repeat_n(0xff, 32));
        let mut modulus = vec![0xff; size];
        modulus[size - 1] = 0xfe;
        input.extend(modulus);
        let name = match size {
            32 => "modexp (0x05), 256-bit modulus",
            128 => "modexp (0x05), 1024-bit modulus",
            _ => "modexp (0x05), 4096-bit modulus",
        };
        let len = input.len() as u64;
        out.push((
            name,
            Code::default()
                .memory(&input)
                .forever(|c| c.static_call(5, len)),
        ));
    }

    // BN254: scalar multiplication of G1 and pairings of the generators.
    let g1 = [word(1), word(2)].concat();
    let g2 = [
        dec("11559732032986387107991004021392285783925812861821192530917403151452391805634"),
        dec("10857046999023057135944570762232829481370756359578518086990519993285655852781"),
        dec("4082367875863433681332203403145435568316851327593401208105741076214120093531"),
        dec("8495653923123431417604973247489272438418190587263600148770280649306958101930"),
    ]
    .concat();
    let mut mul = g1.clone();
    mul.extend_from_slice(&[0xff; 32]);
    out.push((
        "BN254 mul (0x07)",
        Code::default()
            .memory(&mul)
            .forever(|c| c.static_call(7, 96)),
    ));
    for pairs in [1usize, 4] {
        let input: Vec<u8> = std::iter::repeat_n([g1.clone(), g2.clone()].concat(), pairs)
            .flatten()
            .collect();
        let len = input.len() as u64;
        out.push((
            if pairs == 1 {
                "BN254 pairing (0x08), 1 pair"
            } else {
                "BN254 pairing (0x08), 4 pairs"
            },
            Code::default()
                .memory(&input)
                .forever(|c| c.static_call(8, len)),
        ));
    }

    // BLAKE2f: 1 gas per round.
    let mut input = 100_000u32.to_be_bytes().to_vec();
    input.extend_from_slice(&[0x11; 64 + 128 + 16]);
    input.push(1);
    out.push((
        "BLAKE2f (0x09), 100,000 rounds a call",
        Code::default()
            .memory(&input)
            .forever(|c| c.static_call(9, 213)),
    ));

    // KZG point evaluation of the zero polynomial (a valid proof).
    let infinity = {
        let mut p = vec![0u8; 48];
        p[0] = 0xc0;
        p
    };
    let mut input =
        hex::decode("010657f37554c781402a22917dee2f75def7ab966d7b770905398eba3c444014").unwrap();
    input.extend_from_slice(&[0u8; 64]);
    input.extend_from_slice(&infinity);
    input.extend_from_slice(&infinity);
    out.push((
        "KZG point evaluation (0x0a)",
        Code::default()
            .memory(&input)
            .forever(|c| c.static_call(10, 192)),
    ));
    out
}

async fn post(addr: SocketAddr, body: &Value) -> Value {
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    serde_json::from_slice(&response[split + 4..]).expect("a JSON-RPC answer")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cap: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(RpcServerConfig::default().call_gas_cap);
    let dir = tempfile::tempdir()?;
    let chain = EmbeddedChain::open(dir.path(), ChainConfig::default())?;
    let config = RpcServerConfig {
        call_gas_cap: cap,
        call_timeout: Duration::from_secs(600),
        senders: SenderPolicy::default(),
        ..RpcServerConfig::default()
    };
    let server = chain
        .serve_rpc("127.0.0.1:0".parse().unwrap(), config)
        .await?;
    println!("eth_call with gas {cap} (the cap), worst of 3 runs each:");
    let mut worst = (Duration::ZERO, "");
    let filter = std::env::args().nth(2).unwrap_or_default();
    for (name, code) in workloads() {
        if !name.contains(&filter) {
            continue;
        }
        let mut slowest = Duration::ZERO;
        let mut answer = Value::Null;
        for _ in 0..3 {
            let request = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                "params": [{"data": code.hex(), "gas": format!("{cap:#x}")}, "latest"]});
            let started = Instant::now();
            answer = post(server.local_addr(), &request).await;
            slowest = slowest.max(started.elapsed());
        }
        let outcome = answer["error"]["message"]
            .as_str()
            .unwrap_or("returned")
            .to_owned();
        println!(
            "  {name:<40} {:>7.0} ms  {:>6.0} Mgas/s  ({outcome})",
            slowest.as_secs_f64() * 1000.0,
            cap as f64 / slowest.as_secs_f64() / 1e6
        );
        if slowest > worst.0 {
            worst = (slowest, name);
        }
    }
    println!(
        "worst: {} in {:.0} ms",
        worst.1,
        worst.0.as_secs_f64() * 1000.0
    );
    server.shutdown().await;
    Ok(())
}
