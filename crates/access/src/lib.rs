//! ledgermq-access: the ledger security mode of a broker node.
//!
//! Joins three parts that must not know each other: the broker core (which
//! asks the `Authenticator` / `Authorizer` traits), the sans-IO device
//! authentication protocols of `ledgermq-security`, and the ledger's
//! [`RegistryView`]. With it a broker admits only devices registered on the
//! ledger, authenticates them with one-time passwords (`LMQ-OTP-1`, or TOTP
//! for clients without AUTH packets), lets them publish and subscribe only
//! where their organisation's admin allowed, and acts at once on
//! revocations, lost rights and blacklist entries read from the ledger.
//!
//! The hot path never waits on the ledger: every decision reads the view's
//! in-memory snapshot. The one thing this crate writes to the ledger is a
//! blacklist decision, from a background task, and only on evidence a
//! third party cannot forge: misuse of the device's own valid credential
//! ([`misuse`]), committed to by the digest of an evidence record
//! ([`evidence`]). Failed logins prove nothing about the identity they
//! claim: they are counted against their source, on this node only
//! (`failures`), so nobody who merely knows a device id can keep that
//! device out.

mod authenticator;
mod authorizer;
mod counters;
mod directory;
mod enforcement;
pub mod envelopes;
pub mod evidence;
mod failures;
pub mod key_topics;
pub mod misuse;
mod scac;
mod settings;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use ledgermq_broker::{Broker, Security};
use ledgermq_ledger::admin::{agreement_public, BrokerNodeFile};
use ledgermq_ledger::contracts::{Deployment, RegistryClient};
use ledgermq_ledger::{Ledger, LedgerError, LocalAccount, RegistryView, Signer};
use ledgermq_security::OtpDirectory as _;

pub use authenticator::LedgerAuthenticator;
pub use authorizer::LedgerAuthorizer;
pub use counters::{AuthCounters, CounterKind, CountersError};
pub use scac::ScacConfig;
pub use settings::AccessSettings;

use directory::DeviceDirectory;
use failures::FailureTracker;
use misuse::MisuseTracker;
use status::StatusReporter;

pub use evidence::EvidenceKind;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("account {account} is not a broker node of the consortium (add it with `ledgermq admin broker add`)")]
    NotABroker { account: Address },
    #[error("the node key file is for account {file}, but the account key is {account}")]
    AccountMismatch { file: Address, account: Address },
    #[error("the node key file's agreement key does not match the one registered on the ledger for {account}")]
    AgreementKeyMismatch { account: Address },
    #[error(transparent)]
    Counters(#[from] CountersError),
    #[error("SCAC: {0}")]
    Scac(String),
}

/// State shared by the authenticator, the authorizer and the enforcer.
pub(crate) struct Access {
    settings: AccessSettings,
    directory: DeviceDirectory,
    failures: FailureTracker,
    misuse: MisuseTracker,
    status: StatusReporter,
    /// End-to-end envelope checks on protected topics.
    envelopes: envelopes::EnvelopeChecks,
    /// The broker, once attached: whether a device is connected right now.
    broker: std::sync::OnceLock<std::sync::Weak<Broker>>,
    registry: RegistryClient,
    signer: Arc<LocalAccount>,
    runtime: tokio::runtime::Handle,
    /// SCAC, once enabled ([`LedgerSecurity::enable_scac`]).
    scac: std::sync::OnceLock<scac::ScacService>,
}

/// How the node follows the registry.
#[derive(Debug, Clone, Copy)]
pub struct ViewOptions {
    /// How often to ask the ledger for new blocks.
    pub poll_interval: Duration,
    /// Blocks an event must be buried under before it is believed.
    pub finality_depth: u64,
}

/// The ledger security mode, ready to be handed to a broker.
pub struct LedgerSecurity {
    access: Arc<Access>,
}

impl LedgerSecurity {
    /// Reads the registry up to the latest block, checks that `account` is
    /// a broker node whose agreement key matches `node`, and starts
    /// following the ledger as `view` says. Call from a tokio runtime.
    pub async fn start(
        ledger: Arc<dyn Ledger>,
        deployment: Deployment,
        account: LocalAccount,
        node: &BrokerNodeFile,
        settings: AccessSettings,
        view: ViewOptions,
    ) -> Result<LedgerSecurity, AccessError> {
        if node.account != account.address() {
            return Err(AccessError::AccountMismatch {
                file: node.account,
                account: account.address(),
            });
        }
        let view = RegistryView::builder(ledger.clone(), deployment)
            .poll_interval(view.poll_interval)
            .finality_depth(view.finality_depth)
            .build()
            .await?;
        let secret = node.agreement_secret_bytes()?;
        let registered = view.broker(&node.account).ok_or(AccessError::NotABroker {
            account: node.account,
        })?;
        if registered.agreement_key != B256::from(agreement_public(&secret)) {
            return Err(AccessError::AgreementKeyMismatch {
                account: node.account,
            });
        }
        view.follow();
        let counters = match &settings.counters_file {
            Some(path) => AuthCounters::open(path)?,
            None => AuthCounters::in_memory(),
        };
        let access = Access {
            directory: DeviceDirectory::new(view, node.account, secret, counters),
            failures: FailureTracker::new(
                settings.failure_limit,
                settings.failure_window,
                settings.failure_delay_max,
                settings.source_ban,
            ),
            misuse: MisuseTracker::new(
                node.account.0 .0,
                settings.evidence_limit,
                settings.evidence_window,
            ),
            status: StatusReporter::new(settings.status_topics, settings.failure_window),
            envelopes: envelopes::EnvelopeChecks::default(),
            broker: std::sync::OnceLock::new(),
            registry: RegistryClient::new(ledger, deployment.registry),
            signer: Arc::new(account),
            runtime: tokio::runtime::Handle::current(),
            scac: std::sync::OnceLock::new(),
            settings,
        };
        Ok(LedgerSecurity {
            access: Arc::new(access),
        })
    }

    /// Serves the `SCACAuth-*` methods of `config` from now on, after
    /// checking its keys against the registry. Call once, before
    /// [`LedgerSecurity::security`]'s broker starts.
    pub fn enable_scac(&self, config: ScacConfig) -> Result<(), AccessError> {
        let service = scac::ScacService::new(&self.access, config)?;
        self.access
            .scac
            .set(service)
            .map_err(|_| AccessError::Scac("already enabled".into()))
    }

    /// The authenticator and authorizer to start the broker with.
    pub fn security(&self) -> Security {
        Security {
            authenticator: Box::new(LedgerAuthenticator(self.access.clone())),
            authorizer: Box::new(LedgerAuthorizer(self.access.clone())),
        }
    }

    /// Connects the running broker: status reports go into it, and ledger
    /// changes act on its sessions from now on.
    pub fn attach(&self, broker: &Arc<Broker>) -> tokio::task::JoinHandle<()> {
        self.access.status.attach(Arc::downgrade(broker));
        let _ = self.access.broker.set(Arc::downgrade(broker));
        tokio::spawn(enforcement::enforce(self.access.clone(), broker.clone()))
    }

    pub fn view(&self) -> &Arc<RegistryView> {
        &self.access.directory.view
    }
}

impl Access {
    /// Whether `device_id` has a live connection on this node.
    fn is_online(&self, device_id: &str) -> bool {
        self.broker
            .get()
            .and_then(std::sync::Weak::upgrade)
            .and_then(|b| b.session(device_id))
            .is_some_and(|s| s.is_online())
    }

    /// Acts on misuse evidence, if an event just completed some.
    fn on_evidence(&self, evidence: Option<evidence::Evidence>) {
        if let Some(e) = evidence {
            if self.directory.status(&e.device_id) == ledgermq_security::DeviceStatus::Active {
                self.blacklist(&e);
            }
        }
    }

    /// Bans the device `evidence` names on this node now and records the
    /// decision on the ledger in the background, with the digest of the
    /// evidence record (logged here in full), retrying while the ledger is
    /// unreachable; every node reading the ledger then refuses the device
    /// too.
    fn blacklist(&self, evidence: &evidence::Evidence) {
        let device_id = evidence.device_id.as_str();
        let now = directory::unix_ms() / 1000;
        let until = now.saturating_add(self.settings.blacklist_duration.as_secs().max(1));
        self.directory.ban_locally(device_id, until);
        self.status.unauth(device_id, "blacklisted");
        let mut salt = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        let record = evidence.record(salt);
        let digest = B256::from(record.digest);
        let sources: Vec<String> = evidence.sources.iter().map(|s| s.to_string()).collect();
        tracing::warn!(
            device_id,
            until,
            kind = evidence.kind.name(),
            reason = evidence.kind.reason_code(),
            count = evidence.count,
            first_ms = evidence.first_ms,
            last_ms = evidence.last_ms,
            sources = sources.join(","),
            salt = %B256::from(record.salt),
            record = %alloy_primitives::hex::encode(&record.bytes),
            evidence = %digest,
            "evidence against the device: blacklisting it on the ledger"
        );
        let registry = self.registry.clone();
        let signer = self.signer.clone();
        let id = device_id.to_owned();
        let reason = evidence.kind.reason_code();
        self.runtime.spawn(async move {
            let mut wait = Duration::from_millis(500);
            for attempt in 1..=6 {
                match registry
                    .blacklist_device(&*signer, &id, until, reason, digest)
                    .await
                {
                    Ok(r) => {
                        tracing::info!(device_id = id, block = r.block_number, evidence = %digest, "blacklist recorded on the ledger");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(device_id = id, attempt, error = %e, "cannot record the blacklist entry yet");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
            tracing::error!(device_id = id, "blacklist entry not recorded on the ledger; the device stays banned on this node only");
        });
    }
}
