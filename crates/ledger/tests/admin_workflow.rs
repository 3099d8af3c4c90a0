//! Device provisioning and resealing through `AdminClient` on the embedded
//! chain: keys generated, bundle written 0600, OTP key only sealed on-chain,
//! and only to the device's own organisation's broker nodes.

use std::sync::Arc;

use ledgermq_ledger::admin::{open_otp_envelope, AdminClient, BrokerNodeKeys, TopicRight};
use ledgermq_ledger::contracts::{deploy_consortium, FoundingOrg};
use ledgermq_ledger::{ChainConfig, EmbeddedChain, Ledger, LedgerError, LocalAccount, Signer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_device_gets_a_bundle_and_envelopes_only_its_own_organisations_nodes_can_open() {
    let dir = tempfile::tempdir().unwrap();
    let ledger: Arc<dyn Ledger> =
        EmbeddedChain::open(&dir.path().join("chain"), ChainConfig::default()).unwrap();
    let (a0, a1) = (LocalAccount::random(), LocalAccount::random());
    let founders = vec![
        FoundingOrg {
            id: "supplier".into(),
            name: "S".into(),
            admins: vec![a0.address()],
        },
        FoundingOrg {
            id: "retailer".into(),
            name: "R".into(),
            admins: vec![a1.address()],
        },
    ];
    let d = deploy_consortium(ledger.as_ref(), &a0, &founders)
        .await
        .unwrap();
    let admin = AdminClient::new(ledger.clone(), d);
    let b1 = BrokerNodeKeys::generate();
    let b1_account = LocalAccount::random();
    admin
        .add_broker_node(&a0, "supplier", b1_account.address(), &b1)
        .await
        .unwrap();

    let rights: Vec<TopicRight> = vec!["t/temp:pub".parse().unwrap(), "t/cfg:sub".parse().unwrap()];
    let out = dir.path().join("bundles/s1.json");
    let bundle = admin
        .register_device(&a0, "supplier", "s1", &rights, &out)
        .await
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let names: Vec<_> = std::fs::read_dir(dir.path().join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["s1.json"], "no temporary file left behind");
    let on_disk = ledgermq_ledger::admin::ProvisioningBundle::load(&out).unwrap();
    assert_eq!(on_disk.otp_key, bundle.otp_key);
    assert_eq!(on_disk.brokers.len(), 1);
    assert!(
        !format!("{bundle:?}").contains(&bundle.otp_key),
        "Debug never shows secrets"
    );
    let dev = admin.registry.get_device("s1").await.unwrap();
    assert_eq!(dev.signing_key, bundle.signing_public);
    assert_eq!(
        admin.registry.get_right("s1", "t/temp").await.unwrap(),
        (true, false)
    );
    assert_eq!(
        admin.registry.get_right("s1", "t/cfg").await.unwrap(),
        (false, true)
    );
    let env = admin
        .registry
        .otp_envelope("s1", b1_account.address())
        .await
        .unwrap();
    let opened = open_otp_envelope(&b1.agreement_secret, "s1", &env).unwrap();
    assert_eq!(alloy_primitives::hex::encode(*opened), bundle.otp_key);

    // Another organisation's node never gets the key; a node of the device's
    // own organisation added later gets it by resealing, once.
    let foreign = BrokerNodeKeys::generate();
    let foreign_account = LocalAccount::random();
    admin
        .add_broker_node(&a1, "retailer", foreign_account.address(), &foreign)
        .await
        .unwrap();
    let b2 = BrokerNodeKeys::generate();
    let b2_account = LocalAccount::random();
    admin
        .add_broker_node(&a0, "supplier", b2_account.address(), &b2)
        .await
        .unwrap();
    let r = admin.reseal(&a0, &out, false).await.unwrap();
    assert_eq!((r.sealed, r.rotated), (1, false));
    assert!(r.cleared_foreign.is_empty() && r.cleared_removed == 0);
    assert_eq!(admin.reseal(&a0, &out, false).await.unwrap().sealed, 0);
    let env2 = admin
        .registry
        .otp_envelope("s1", b2_account.address())
        .await
        .unwrap();
    assert_eq!(
        *open_otp_envelope(&b2.agreement_secret, "s1", &env2).unwrap(),
        *opened
    );
    assert!(admin
        .registry
        .otp_envelope("s1", foreign_account.address())
        .await
        .unwrap()
        .is_empty());
    let err = admin
        .registry
        .set_otp_envelope(&a0, "s1", foreign_account.address(), &env2)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LedgerError::Reverted("broker node belongs to another organisation".into())
    );

    // The supplier removes that node and the retailer registers the same
    // account as its own: the envelope on the ledger is now held by another
    // organisation's node (as in consortia provisioned before envelopes
    // were restricted). Reseal deletes it and names it; rotation gives the
    // device a fresh key: the bundle is rewritten, every own node's
    // envelope replaced.
    admin
        .consortium
        .remove_broker(&a0, b2_account.address())
        .await
        .unwrap();
    admin
        .add_broker_node(&a1, "retailer", b2_account.address(), &b2)
        .await
        .unwrap();
    let r = admin.reseal(&a0, &out, false).await.unwrap();
    assert_eq!(
        r.cleared_foreign,
        vec![(b2_account.address(), "retailer".to_string())]
    );
    assert_eq!((r.sealed, r.cleared_removed, r.rotated), (0, 0, false));
    let r = admin.reseal(&a0, &out, true).await.unwrap();
    assert_eq!((r.sealed, r.rotated), (1, true));
    assert!(r.cleared_foreign.is_empty());
    // A node that is gone altogether: its envelope is deleted too.
    let b3 = BrokerNodeKeys::generate();
    let b3_account = LocalAccount::random();
    admin
        .add_broker_node(&a0, "supplier", b3_account.address(), &b3)
        .await
        .unwrap();
    assert_eq!(admin.reseal(&a0, &out, false).await.unwrap().sealed, 1);
    admin
        .consortium
        .remove_broker(&a0, b3_account.address())
        .await
        .unwrap();
    let r = admin.reseal(&a0, &out, false).await.unwrap();
    assert_eq!((r.sealed, r.cleared_removed), (0, 1));
    let rotated = ledgermq_ledger::admin::ProvisioningBundle::load(&out).unwrap();
    assert_ne!(rotated.otp_key, bundle.otp_key);
    assert_eq!(rotated.signing_secret, bundle.signing_secret);
    let env = admin
        .registry
        .otp_envelope("s1", b1_account.address())
        .await
        .unwrap();
    let opened = open_otp_envelope(&b1.agreement_secret, "s1", &env).unwrap();
    assert_eq!(alloy_primitives::hex::encode(*opened), rotated.otp_key);
    assert_eq!(
        admin.registry.otp_envelope_brokers("s1").await.unwrap(),
        vec![b1_account.address()]
    );

    // Refusals leave no bundle behind; an existing bundle is never overwritten.
    let rogue = dir.path().join("bundles/rogue.json");
    let err = admin
        .register_device(&a1, "supplier", "rogue", &[], &rogue)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LedgerError::Reverted("caller is not an admin of organisation supplier".into())
    );
    assert!(!rogue.exists());
    let err = admin
        .register_device(&a0, "nowhere", "x", &[], &rogue)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LedgerError::Other("unknown organisation nowhere".into())
    );
    assert!(admin
        .register_device(&a0, "supplier", "s2", &[], &out)
        .await
        .is_err());
    assert!(admin.registry.get_device("s2").await.is_err());
}
