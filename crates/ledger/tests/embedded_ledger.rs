//! The `Ledger` conformance suite on the embedded chain in-process, what
//! only the embedded chain does, and local accounts.

mod backends;
#[macro_use]
mod conformance;
mod rpc_support;

use std::sync::Arc;

use ledgermq_ledger::{ChainConfig, EmbeddedChain, Ledger, LocalAccount, Signer};

conformance_tests!(crate::backends::embedded);

fn open_chain() -> (tempfile::TempDir, Arc<EmbeddedChain>) {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap();
    (dir, chain)
}

#[tokio::test]
async fn an_empty_chain_produces_no_blocks() {
    let (_dir, chain) = open_chain();
    assert_eq!(chain.chain_id().await.unwrap(), 0x4c4d51);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(chain.block_number().await.unwrap(), 0, "only genesis");
    let genesis = chain.block(0).await.unwrap().unwrap();
    assert!(genesis.transactions.is_empty());
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_chain_directory_and_its_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/ledger");
    let chain = EmbeddedChain::open(&dir, ChainConfig::default()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tmp.path().join("data")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2, "blocks file and lock file");
    drop(chain);
}

#[tokio::test]
async fn a_second_open_of_the_same_dir_is_refused() {
    let (dir, _chain) = open_chain();
    let err = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("in use by another process"), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
}

#[tokio::test]
async fn a_signer_for_another_address_is_refused() {
    struct Liar(LocalAccount, LocalAccount);
    impl Signer for Liar {
        fn address(&self) -> alloy_primitives::Address {
            self.0.address()
        }
        fn sign_hash(
            &self,
            hash: &alloy_primitives::B256,
        ) -> ledgermq_ledger::LedgerResult<[u8; 65]> {
            self.1.sign_hash(hash)
        }
    }
    let (_dir, chain) = open_chain();
    let liar = Liar(LocalAccount::random(), LocalAccount::random());
    let err = chain
        .send_transaction(&liar, Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ledgermq_ledger::LedgerError::Rejected(_)),
        "{err:?}"
    );
    // The honest account still transacts normally afterwards.
    let honest = LocalAccount::random();
    conformance::deploy_counter(chain.as_ref(), &honest).await;
}

#[test]
fn key_files_are_private_and_reload_to_the_same_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/admin.key");
    let created = LocalAccount::create(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("keys"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            dir_mode & 0o777,
            0o700,
            "a created key directory is private"
        );
    }
    let names: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["admin.key"], "no temporary file left behind");
    let loaded = LocalAccount::load(&path).unwrap();
    assert_eq!(created.address(), loaded.address());
    assert!(
        LocalAccount::create(&path).is_err(),
        "never overwrites a key"
    );
    let debug = format!("{loaded:?}");
    let secret = std::fs::read_to_string(&path).unwrap();
    assert!(!debug.contains(secret.trim()), "Debug never shows the key");
    std::fs::write(dir.path().join("bad.key"), "not hex").unwrap();
    assert!(LocalAccount::load(&dir.path().join("bad.key")).is_err());
}
