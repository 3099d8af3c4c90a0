//! `ledgermq ledger …`: deploy the contracts, verify the embedded chain,
//! measure registry throughput. Also home of [`LedgerTarget`], the
//! `--rpc URL | --data-dir DIR` choice shared with `ledgermq admin`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use ledgermq_ledger::admin::apply::{founders, ApplyFile};
use ledgermq_ledger::contracts::{deploy_consortium, Deployment, FoundingOrg, RegistryClient};
use ledgermq_ledger::{
    Ledger, LedgerError, LocalAccount, RegistryView, RpcLedger, RpcOptions, Signer,
};

/// Prints a line to stdout; a closed pipe (`| head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use out;

/// Sub-directory of `--data-dir` holding the embedded chain.
pub const CHAIN_SUBDIR: &str = "ledger";
/// Deployment file name under `--data-dir`.
pub const DEPLOYMENT_FILE: &str = "ledger.toml";

/// Which ledger to talk to.
#[derive(Args, Debug, Clone)]
pub struct LedgerTarget {
    /// Ethereum JSON-RPC endpoint (a chain, or a running broker's embedded node).
    #[arg(long, global = true, value_name = "URL", conflicts_with = "data_dir")]
    pub rpc: Option<String>,
    /// Accept a plain http:// --rpc to a host that is not loopback (anyone on
    /// the path could answer in the ledger's name).
    #[arg(long, global = true, requires = "rpc")]
    pub rpc_insecure: bool,
    /// Data dir of the embedded ledger (when no broker is running on it).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Deployment file [default: DIR/ledger.toml with --data-dir, ./ledger.toml with --rpc].
    #[arg(long, global = true, value_name = "FILE")]
    pub deployment: Option<PathBuf>,
}

impl LedgerTarget {
    pub fn deployment_path(&self) -> PathBuf {
        match (&self.deployment, &self.data_dir) {
            (Some(p), _) => p.clone(),
            (None, Some(dir)) => dir.join(DEPLOYMENT_FILE),
            (None, None) => PathBuf::from(DEPLOYMENT_FILE),
        }
    }

    pub async fn open(&self) -> anyhow::Result<Arc<dyn Ledger>> {
        match (&self.rpc, &self.data_dir) {
            (Some(url), _) => Ok(Arc::new(
                RpcLedger::connect_with(
                    url,
                    RpcOptions {
                        allow_insecure_http: self.rpc_insecure,
                        ..RpcOptions::default()
                    },
                )
                .await
                .map_err(ledger_error)?,
            )),
            (None, Some(dir)) => open_embedded(dir).await,
            (None, None) => bail!("choose a ledger: --rpc URL or --data-dir DIR"),
        }
    }

    /// The deployment file's contents.
    pub fn load_deployment(&self) -> anyhow::Result<Deployment> {
        let path = self.deployment_path();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no deployment at {} (deploy with `ledgermq ledger deploy` or `ledgermq admin apply`, or pass --deployment FILE)",
                path.display()
            )
        })?;
        Deployment::from_toml(&text).map_err(ledger_error)
    }

    /// The deployment file when one is given (or the data dir's), else
    /// `provisioned`: the contracts a device's bundle was made with.
    pub fn deployment_or(&self, provisioned: Deployment) -> anyhow::Result<Deployment> {
        if self.deployment.is_some() || self.data_dir.is_some() {
            self.load_deployment()
        } else {
            Ok(provisioned)
        }
    }
}

async fn open_embedded(dir: &Path) -> anyhow::Result<Arc<dyn Ledger>> {
    embedded::open(dir.join(CHAIN_SUBDIR))
        .await
        .map_err(|e| anyhow!("cannot open the embedded ledger in {}: {e}", dir.display()))
}

/// The embedded backend (ledgermq_ledger::embedded), behind one seam.
mod embedded {
    use super::*;

    pub async fn open(chain_dir: PathBuf) -> anyhow::Result<Arc<dyn Ledger>> {
        let chain = tokio::task::spawn_blocking(move || {
            ledgermq_ledger::EmbeddedChain::open(
                &chain_dir,
                ledgermq_ledger::ChainConfig::default(),
            )
        })
        .await
        .context("opening the embedded ledger")??;
        Ok(chain)
    }

    pub async fn verify(chain_dir: PathBuf) -> anyhow::Result<String> {
        if !chain_dir.exists() {
            bail!("no embedded ledger in {}", chain_dir.display());
        }
        let r = tokio::task::spawn_blocking(move || ledgermq_ledger::verify(&chain_dir))
            .await
            .context("verifying the embedded ledger")??;
        Ok(format!(
            "ok: chain {} with {} blocks and {} transactions; head {} ({}), state root {}",
            r.chain_id, r.blocks, r.transactions, r.head_number, r.head_hash, r.head_state_root
        ))
    }
}

/// Turns a ledger error into a sentence for the operator.
pub fn ledger_error(e: LedgerError) -> anyhow::Error {
    match e {
        LedgerError::Reverted(reason) => anyhow!("refused by the contract: {reason}"),
        other => anyhow!("{other}"),
    }
}

pub fn load_account(path: &Path) -> anyhow::Result<LocalAccount> {
    LocalAccount::load(path).map_err(|e| anyhow!("cannot load the account key file: {e}"))
}

#[derive(Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    cmd: LedgerCmd,
}

#[derive(Subcommand)]
enum LedgerCmd {
    /// Deploy Consortium, Registry and Audit and write the deployment file.
    Deploy(DeployArgs),
    /// Check the embedded chain's blocks, hashes and state.
    Verify {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Measure device registrations per second and event-to-view latency.
    Bench(BenchArgs),
}

#[derive(Args)]
struct DeployArgs {
    #[command(flatten)]
    target: LedgerTarget,
    /// Key file of the deploying account.
    #[arg(long, value_name = "KEYFILE")]
    account: PathBuf,
    /// TOML with `[[org]] id, name, admins = ["0x…"]` for the founding organisations.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "apply",
        conflicts_with = "apply"
    )]
    orgs_file: Option<PathBuf>,
    /// Take the founding organisations from an apply file (admin key files created under --keys-dir).
    #[arg(long, value_name = "FILE.toml")]
    apply: Option<PathBuf>,
    #[arg(long, value_name = "DIR", default_value = "keys")]
    keys_dir: PathBuf,
    /// Where to write the deployment [default: the --deployment path].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgsFile {
    org: Vec<FoundingOrg>,
}

pub fn run(args: LedgerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.cmd {
            LedgerCmd::Deploy(a) => deploy(a).await,
            LedgerCmd::Verify { data_dir } => verify(&data_dir).await,
            LedgerCmd::Bench(a) => bench(a).await,
        }
    })
}

async fn deploy(a: DeployArgs) -> anyhow::Result<()> {
    let out = a.out.clone().unwrap_or_else(|| a.target.deployment_path());
    if out.exists() {
        bail!(
            "{} already exists: this network is deployed already",
            out.display()
        );
    }
    let founding = match (&a.orgs_file, &a.apply) {
        (Some(f), _) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            toml::from_str::<OrgsFile>(&text)
                .with_context(|| format!("{} is not a valid orgs file", f.display()))?
                .org
        }
        (None, Some(f)) => founders(&ApplyFile::load(f).map_err(ledger_error)?, &a.keys_dir)
            .map_err(ledger_error)?,
        (None, None) => bail!("pass --orgs-file FILE or --apply FILE.toml"),
    };
    let account = load_account(&a.account)?;
    let ledger = a.target.open().await?;
    let d = deploy_consortium(ledger.as_ref(), &account, &founding)
        .await
        .map_err(ledger_error)?;
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, d.to_toml()).with_context(|| format!("writing {}", out.display()))?;
    out!("consortium {}", d.consortium);
    out!("registry {}", d.registry);
    out!("audit {}", d.audit);
    out!("deployment written to {}", out.display());
    Ok(())
}

async fn verify(data_dir: &Path) -> anyhow::Result<()> {
    let report = embedded::verify(data_dir.join(CHAIN_SUBDIR))
        .await
        .with_context(|| format!("verification of {} failed", data_dir.display()))?;
    out!("{report}");
    Ok(())
}

#[derive(Args)]
struct BenchArgs {
    /// Data dir for a fresh embedded chain (must not hold one yet).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Device registrations to send.
    #[arg(long, default_value_t = 20_000)]
    devices: usize,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
    /// RegistryView poll interval in milliseconds for the latency test.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Latency samples.
    #[arg(long, default_value_t = 100)]
    samples: usize,
}

async fn bench(a: BenchArgs) -> anyhow::Result<()> {
    if a.data_dir.join(CHAIN_SUBDIR).exists() {
        bail!(
            "{} already holds a ledger; bench needs a fresh data dir",
            a.data_dir.display()
        );
    }
    let ledger = open_embedded(&a.data_dir).await?;
    let admin = Arc::new(LocalAccount::random());
    let founders = vec![FoundingOrg {
        id: "bench".into(),
        name: "Bench".into(),
        admins: vec![admin.address()],
    }];
    let d = deploy_consortium(ledger.as_ref(), admin.as_ref(), &founders)
        .await
        .map_err(ledger_error)?;
    let registry = RegistryClient::new(ledger.clone(), d.registry);

    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (registry, admin, next, total) =
            (registry.clone(), admin.clone(), next.clone(), a.devices);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), LedgerError>(());
                }
                let key = alloy_primitives::B256::with_last_byte(1);
                registry
                    .register_device(admin.as_ref(), "bench", &format!("dev-{i}"), key, key)
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await?.map_err(ledger_error)?;
    }
    let secs = started.elapsed().as_secs_f64();
    out!(
        "registrations: {} in {secs:.2} s = {:.0} tx/s (concurrency {})",
        a.devices,
        a.devices as f64 / secs,
        a.concurrency
    );

    let view = RegistryView::builder(ledger.clone(), d)
        .poll_interval(Duration::from_millis(a.poll_ms))
        .build()
        .await
        .map_err(ledger_error)?;
    let _follower = view.follow();
    let mut lat = Vec::with_capacity(a.samples);
    for i in 0..a.samples {
        let id = format!("lat-{i}");
        let key = alloy_primitives::B256::with_last_byte(2);
        registry
            .register_device(admin.as_ref(), "bench", &id, key, key)
            .await
            .map_err(ledger_error)?;
        let t0 = Instant::now();
        while view.device(&id).is_none() {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    if !lat.is_empty() {
        out!(
            "commit -> RegistryView: p50 {:?} p99 {:?} max {:?} (poll every {} ms, {} samples)",
            pct(50),
            pct(99),
            lat[lat.len() - 1],
            a.poll_ms,
            lat.len()
        );
    }
    Ok(())
}
