//! The embedded node's JSON-RPC endpoint, driven by raw HTTP requests and
//! transactions signed here (legacy, EIP-2930 and EIP-1559): the methods,
//! the limits that keep a hostile client from hurting the node, and who
//! may send transactions.

mod conformance;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{hex, Address, Bytes, Signature, TxKind, B256, U256};
use ledgermq_ledger::contracts::{deploy_consortium, ConsortiumClient, FoundingOrg};
use ledgermq_ledger::{
    ChainConfig, EmbeddedChain, Ledger, LedgerError, LocalAccount, RpcLedger, RpcServerConfig,
    RpcServerHandle, SenderPolicy, Signer, TxRequest,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHAIN_ID: u64 = 0x4c4d51;

/// `JUMPDEST PUSH0 JUMP`: init code that loops until its gas runs out.
const ENDLESS_LOOP: &str = "0x5b5f56";

async fn start() -> (tempfile::TempDir, Arc<EmbeddedChain>, RpcServerHandle) {
    start_with(RpcServerConfig::default()).await
}

async fn start_with(
    config: RpcServerConfig,
) -> (tempfile::TempDir, Arc<EmbeddedChain>, RpcServerHandle) {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap();
    let server = chain
        .serve_rpc("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    (dir, chain, server)
}

/// Accounts allowed to send transactions, nobody else.
fn allowing(accounts: &[&LocalAccount]) -> RpcServerConfig {
    RpcServerConfig {
        senders: SenderPolicy::Consortium {
            allow: accounts.iter().map(|a| a.address()).collect(),
        },
        ..RpcServerConfig::default()
    }
}

/// One HTTP POST; returns the status and the body.
async fn post(addr: SocketAddr, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await; // the server may stop reading early
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = std::str::from_utf8(&response[9..12])
        .unwrap()
        .parse()
        .unwrap();
    (status, response[split + 4..].to_vec())
}

async fn call_raw(addr: SocketAddr, request: Value) -> Value {
    let (status, body) = post(addr, request.to_string().as_bytes()).await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

async fn rpc(addr: SocketAddr, method: &str, params: Value) -> Value {
    let answer = call_raw(
        addr,
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    )
    .await;
    assert_eq!(answer["id"], 1);
    answer
}

async fn result(addr: SocketAddr, method: &str, params: Value) -> Value {
    let answer = rpc(addr, method, params).await;
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

fn signature(key: &LocalAccount, hash: alloy_primitives::B256) -> Signature {
    let raw = key.sign_hash(&hash).unwrap();
    Signature::from_bytes_and_parity(&raw[..64], raw[64] != 0)
}

fn legacy(key: &LocalAccount, nonce: u64, to: TxKind, input: Bytes) -> String {
    let tx = TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce,
        gas_price: 0,
        gas_limit: 1_000_000,
        to,
        value: U256::ZERO,
        input,
    };
    let sig = signature(key, tx.signature_hash());
    hex::encode_prefixed(TxEnvelope::from(tx.into_signed(sig)).encoded_2718())
}

fn eip2930(key: &LocalAccount, nonce: u64, to: TxKind, input: Bytes) -> String {
    let tx = TxEip2930 {
        chain_id: CHAIN_ID,
        nonce,
        gas_price: 1,
        gas_limit: 1_000_000,
        to,
        value: U256::ZERO,
        input,
        access_list: Default::default(),
    };
    let sig = signature(key, tx.signature_hash());
    hex::encode_prefixed(TxEnvelope::from(tx.into_signed(sig)).encoded_2718())
}

fn eip1559(key: &LocalAccount, chain_id: u64, nonce: u64, to: TxKind, input: Bytes) -> String {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 1_000_000,
        max_fee_per_gas: 2,
        max_priority_fee_per_gas: 1,
        to,
        value: U256::ZERO,
        access_list: Default::default(),
        input,
    };
    let sig = signature(key, tx.signature_hash());
    hex::encode_prefixed(TxEnvelope::from(tx.into_signed(sig)).encoded_2718())
}

async fn wait_receipt(addr: SocketAddr, hash: &Value) -> Value {
    for _ in 0..200 {
        let receipt = result(addr, "eth_getTransactionReceipt", json!([hash])).await;
        if !receipt.is_null() {
            return receipt;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no receipt for {hash}");
}

#[tokio::test]
async fn node_identity_and_fee_queries() {
    let (_dir, _chain, server) = start().await;
    let addr = server.local_addr();
    assert_eq!(result(addr, "eth_chainId", json!([])).await, "0x4c4d51");
    assert_eq!(
        result(addr, "net_version", json!([])).await,
        CHAIN_ID.to_string()
    );
    assert!(result(addr, "web3_clientVersion", json!([]))
        .await
        .as_str()
        .unwrap()
        .starts_with("ledgermq/"));
    assert_eq!(result(addr, "eth_blockNumber", json!([])).await, "0x0");
    assert_eq!(result(addr, "eth_gasPrice", json!([])).await, "0x0");
    assert_eq!(
        result(addr, "eth_maxPriorityFeePerGas", json!([])).await,
        "0x0"
    );
    let history = result(
        addr,
        "eth_feeHistory",
        json!(["0x5", "latest", [25.0, 75.0]]),
    )
    .await;
    assert_eq!(history["oldestBlock"], "0x0");
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 2);
    assert_eq!(history["reward"][0].as_array().unwrap().len(), 2);
    let genesis = result(addr, "eth_getBlockByNumber", json!(["0x0", false])).await;
    assert_eq!(genesis["number"], "0x0");
    let by_hash = result(addr, "eth_getBlockByHash", json!([genesis["hash"], true])).await;
    assert_eq!(by_hash["hash"], genesis["hash"]);
    server.shutdown().await;
}

#[tokio::test]
async fn hostile_requests_get_json_rpc_errors() {
    let (_dir, _chain, server) = start().await;
    let addr = server.local_addr();
    let (status, body) = post(addr, b"{not json").await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["error"]["code"], -32700);
    assert_eq!(
        rpc(addr, "eth_nope", json!([])).await["error"]["code"],
        -32601
    );
    assert_eq!(
        rpc(addr, "eth_getBalance", json!(["0x12"])).await["error"]["code"],
        -32602
    );
    assert_eq!(
        rpc(addr, "eth_sendRawTransaction", json!(["0xdeadbeef"])).await["error"]["code"],
        -32602
    );
    assert_eq!(call_raw(addr, json!([])).await["error"]["code"], -32600);
    let limits = RpcServerConfig::default();
    let batch: Vec<Value> = (0..=limits.max_batch)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"eth_chainId"}))
        .collect();
    let refused = call_raw(addr, json!(batch)).await;
    assert_eq!(refused["error"]["code"], -32600);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 100"),
        "{refused}"
    );
    let full: Vec<Value> = (0..limits.max_batch)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"eth_chainId"}))
        .collect();
    assert_eq!(
        call_raw(addr, json!(full)).await.as_array().unwrap().len(),
        100
    );
    let huge = vec![b' '; limits.max_body_bytes + 1];
    assert_eq!(post(addr, &huge).await.0, 413);
    let just_fits = vec![b' '; limits.max_body_bytes - 2];
    let mut body = b"[]".to_vec();
    body.extend_from_slice(&just_fits);
    assert_eq!(post(addr, &body).await.0, 200);
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
        7
    ]);
    let answers = call_raw(addr, batch).await;
    assert_eq!(answers.as_array().unwrap().len(), 3);
    assert_eq!(answers[0]["result"], "0x4c4d51");
    assert_eq!(answers[1]["result"], "0x0");
    assert_eq!(answers[2]["error"]["code"], -32600);
}

#[tokio::test]
async fn signed_transactions_of_every_type_are_served_end_to_end() {
    let key = LocalAccount::random();
    let (_dir, chain, server) = start_with(allowing(&[&key])).await;
    let addr = server.local_addr();
    let from = key.address().to_string();
    let nonce = result(addr, "eth_getTransactionCount", json!([from, "pending"])).await;
    assert_eq!(nonce, "0x0");
    let code: Bytes = hex::decode(conformance::COUNTER_CREATION).unwrap().into();
    let hash = result(
        addr,
        "eth_sendRawTransaction",
        json!([legacy(&key, 0, TxKind::Create, code)]),
    )
    .await;
    let receipt = wait_receipt(addr, &hash).await;
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["from"], from.to_lowercase());
    let counter: Address = serde_json::from_value(receipt["contractAddress"].clone()).unwrap();
    let deployed = result(addr, "eth_getCode", json!([counter, "latest"])).await;
    assert!(deployed.as_str().unwrap().len() > 100);

    let increment: Bytes = conformance::INCREMENT.to_vec().into();
    let estimate = result(
        addr,
        "eth_estimateGas",
        json!([{"from": from, "to": counter, "data": increment}]),
    )
    .await;
    assert!(u64::from_str_radix(&estimate.as_str().unwrap()[2..], 16).unwrap() > 21_000);
    let first = result(
        addr,
        "eth_sendRawTransaction",
        json!([eip2930(&key, 1, TxKind::Call(counter), increment)]),
    )
    .await;
    let second = result(
        addr,
        "eth_sendRawTransaction",
        json!([eip1559(
            &key,
            CHAIN_ID,
            2,
            TxKind::Call(counter),
            conformance::add_call(5)
        )]),
    )
    .await;
    let last = wait_receipt(addr, &second).await;
    assert_eq!(wait_receipt(addr, &first).await["type"], "0x1");
    assert_eq!(last["type"], "0x2");
    assert_eq!(last["logs"][0]["transactionHash"], second);
    let count = result(
        addr,
        "eth_call",
        json!([{"to": counter, "data": hex::encode_prefixed(conformance::COUNT)}, "latest"]),
    )
    .await;
    assert_eq!(
        U256::from_str_radix(&count.as_str().unwrap()[2..], 16).unwrap(),
        U256::from(6)
    );

    // Logs by address and event, across blocks.
    let logs = result(addr, "eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "latest", "address": counter, "topics": [conformance::incremented_topic()]}])).await;
    assert_eq!(logs.as_array().unwrap().len(), 2);
    assert_eq!(logs[1]["transactionHash"], second);
    let none = result(
        addr,
        "eth_getLogs",
        json!([{"fromBlock": "0x0", "address": Address::ZERO}]),
    )
    .await;
    assert!(none.as_array().unwrap().is_empty());

    let tx = result(addr, "eth_getTransactionByHash", json!([second])).await;
    assert_eq!(tx["from"], from.to_lowercase());
    assert_eq!(tx["blockNumber"], last["blockNumber"]);
    let block = result(
        addr,
        "eth_getBlockByNumber",
        json!([last["blockNumber"], true]),
    )
    .await;
    assert_eq!(block["hash"], last["blockHash"]);
    assert!(block["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["hash"] == second));

    // A revert comes back like geth/anvil: code 3, reason, revert data.
    let reverted = rpc(
        addr,
        "eth_call",
        json!([{"to": counter, "data": conformance::add_call(0)}]),
    )
    .await;
    assert_eq!(reverted["error"]["code"], 3);
    assert!(reverted["error"]["message"]
        .as_str()
        .unwrap()
        .contains("n must be positive"));
    assert!(reverted["error"]["data"]
        .as_str()
        .unwrap()
        .starts_with("0x08c379a0"));
    let estimate_revert = rpc(
        addr,
        "eth_estimateGas",
        json!([{"to": counter, "data": conformance::add_call(0)}]),
    )
    .await;
    assert_eq!(estimate_revert["error"]["code"], 3);

    // Replays and foreign chains are refused.
    let replay = rpc(
        addr,
        "eth_sendRawTransaction",
        json!([eip1559(
            &key,
            CHAIN_ID,
            2,
            TxKind::Call(counter),
            conformance::add_call(5)
        )]),
    )
    .await;
    assert!(
        replay["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already known"),
        "{replay}"
    );
    let foreign = rpc(
        addr,
        "eth_sendRawTransaction",
        json!([eip1559(
            &key,
            1,
            3,
            TxKind::Call(counter),
            conformance::add_call(5)
        )]),
    )
    .await;
    assert!(
        foreign["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chain id"),
        "{foreign}"
    );
    assert_eq!(
        result(addr, "eth_getTransactionCount", json!([from, "latest"])).await,
        "0x3"
    );

    // The in-process API and the RPC path see one chain.
    let seen = conformance::count(chain.as_ref(), counter).await;
    assert_eq!(seen, 6);
    server.shutdown().await;
}

// ------------------------------------------------------------- limits

/// Sends `fast` at once, then `slow` one byte every `every`, until the
/// server closes the connection; returns how long that took (from the
/// first byte) and what the server answered.
async fn trickle(
    addr: SocketAddr,
    fast: &[u8],
    slow: &[u8],
    every: Duration,
) -> (Duration, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    stream.write_all(fast).await.unwrap();
    for byte in slow {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        match tokio::time::timeout(every, stream.read(&mut buf)).await {
            Err(_) => continue, // nothing yet: keep trickling
            Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), answer),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    // Everything sent: wait (boundedly) for the server to close.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    (started.elapsed(), answer)
}

fn short_reads() -> RpcServerConfig {
    RpcServerConfig {
        read_timeout: Duration::from_millis(500),
        ..RpcServerConfig::default()
    }
}

#[tokio::test]
async fn a_client_sending_headers_byte_by_byte_is_cut_off() {
    let config = short_reads();
    let timeout = config.read_timeout;
    let (_dir, _chain, server) = start_with(config).await;
    let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let (took, _) = trickle(server.local_addr(), b"", head, Duration::from_millis(50)).await;
    assert!(
        took < 3 * timeout,
        "headers trickled for {took:?}, the read timeout is {timeout:?}"
    );
    // Not by accident: the whole head at this pace takes longer than that.
    assert!(head.len() as u32 * 50 > 3 * timeout.as_millis() as u32);
}

#[tokio::test]
async fn a_client_sending_its_body_byte_by_byte_is_cut_off_with_408() {
    let config = short_reads();
    let timeout = config.read_timeout;
    let (_dir, _chain, server) = start_with(config).await;
    let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n";
    let body = [b' '; 200];
    let (took, answer) = trickle(server.local_addr(), head, &body, Duration::from_millis(50)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(took < 3 * timeout, "the body trickled for {took:?}");
}

#[tokio::test]
async fn an_idle_connection_is_closed_within_the_read_timeout() {
    let config = short_reads();
    let timeout = config.read_timeout;
    let (_dir, _chain, server) = start_with(config).await;
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() < 3 * timeout, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_huge_gas_request_is_capped() {
    let config = RpcServerConfig {
        call_gas_cap: 2_000_000,
        ..RpcServerConfig::default()
    };
    let (_dir, _chain, server) = start_with(config).await;
    let addr = server.local_addr();
    // Uncapped, u64::MAX gas of an endless loop would run for centuries.
    let answer = rpc(
        addr,
        "eth_call",
        json!([{"data": ENDLESS_LOOP, "gas": "0xffffffffffffffff"}, "latest"]),
    )
    .await;
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("OutOfGas"), "{answer}");
    let estimate = rpc(
        addr,
        "eth_estimateGas",
        json!([{"data": ENDLESS_LOOP, "gas": "0xffffffffffffffff"}]),
    )
    .await;
    let message = estimate["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("OutOfGas"), "{estimate}");
}

#[tokio::test]
async fn a_call_over_the_time_limit_gets_an_error_while_other_clients_are_served() {
    let config = RpcServerConfig {
        call_timeout: Duration::from_millis(200),
        call_threads: 1,
        ..RpcServerConfig::default()
    };
    let (_dir, _chain, server) = start_with(config).await;
    let addr = server.local_addr();
    let runaway = tokio::spawn(async move {
        rpc(addr, "eth_call", json!([{"data": ENDLESS_LOOP}, "latest"])).await
    });
    // While it runs (30 M gas of jumps), another client is answered promptly.
    for _ in 0..5 {
        let asked = Instant::now();
        assert_eq!(result(addr, "eth_blockNumber", json!([])).await, "0x0");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = runaway.await.unwrap();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("timed out") || message.contains("OutOfGas"),
        "{answer}"
    );
    if message.contains("timed out") {
        assert!(message.contains("ledger_rpc_call_timeout_ms"), "{message}");
    }
    // The slot comes back once the gas is spent: calls work again.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = rpc(addr, "eth_call", json!([{"data": "0x00"}, "latest"])).await;
        if answer.get("error").is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------ who may send

async fn rpc_ledger(server: &RpcServerHandle) -> Arc<dyn Ledger> {
    Arc::new(RpcLedger::connect(&server.url()).await.unwrap())
}

fn refusal(r: Result<impl std::fmt::Debug, LedgerError>) -> String {
    match r {
        Err(LedgerError::Rejected(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn strangers_may_not_send_transactions_admins_and_broker_nodes_may() {
    let deployer = LocalAccount::random();
    let admin = LocalAccount::random();
    let broker = LocalAccount::random();
    let stranger = LocalAccount::random();
    let (_dir, _chain, server) = start_with(allowing(&[&deployer])).await;
    let addr = server.local_addr();
    let ledger = rpc_ledger(&server).await;
    let ping = |from: &LocalAccount| TxRequest {
        to: Some(from.address()),
        ..TxRequest::default()
    };

    // Before the consortium exists, only the allow-list may send.
    let refused = refusal(ledger.send_transaction(&admin, ping(&admin)).await);
    assert!(refused.contains("ledger_rpc_tx_allow"), "{refused}");
    assert!(refused.contains(&admin.address().to_string()), "{refused}");
    let founders = [FoundingOrg {
        id: "supplier".into(),
        name: "Supplier".into(),
        admins: vec![admin.address()],
    }];
    let deployment = deploy_consortium(ledger.as_ref(), &deployer, &founders)
        .await
        .expect("the allow-listed deployer deploys");

    // Its admin may now send; the broker node it registers too.
    let consortium = ConsortiumClient::new(ledger.clone(), deployment.consortium);
    consortium
        .add_broker(
            &admin,
            "supplier",
            broker.address(),
            B256::repeat_byte(1),
            B256::repeat_byte(2),
        )
        .await
        .expect("a registered admin is accepted");
    ledger
        .send_transaction(&broker, ping(&broker))
        .await
        .expect("a registered broker node is accepted");

    // A stranger is refused, with or without a fee, before the pool.
    let refused = refusal(ledger.send_transaction(&stranger, ping(&stranger)).await);
    assert!(refused.contains("zero-fee transaction"), "{refused}");
    assert!(refused.contains("ledger_rpc_tx_allow"), "{refused}");
    let paying = rpc(
        addr,
        "eth_sendRawTransaction",
        json!([eip1559(
            &stranger,
            CHAIN_ID,
            0,
            TxKind::Call(stranger.address()),
            Bytes::new()
        )]),
    )
    .await;
    assert_eq!(paying["error"]["code"], -32003, "{paying}");
    assert!(
        paying["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may not send transactions"),
        "{paying}"
    );
    let free = rpc(
        addr,
        "eth_sendRawTransaction",
        json!([legacy(
            &stranger,
            0,
            TxKind::Call(stranger.address()),
            Bytes::new()
        )]),
    )
    .await;
    assert_eq!(free["error"]["code"], -32003, "{free}");
    assert!(
        free["error"]["message"]
            .as_str()
            .unwrap()
            .contains("zero-fee"),
        "{free}"
    );
    assert_eq!(
        result(
            addr,
            "eth_getTransactionCount",
            json!([stranger.address(), "pending"])
        )
        .await,
        "0x0"
    );

    // Calls stay open to anyone.
    assert!(consortium.is_broker(broker.address()).await.unwrap());

    // Membership is read live: a removed broker node may send no more.
    consortium
        .remove_broker(&admin, broker.address())
        .await
        .unwrap();
    let refused = refusal(ledger.send_transaction(&broker, ping(&broker)).await);
    assert!(refused.contains(&broker.address().to_string()), "{refused}");
}
