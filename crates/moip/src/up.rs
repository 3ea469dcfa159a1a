//! `moip up`: a whole community node in one process — the embedded regtest chain with its RPC,
//! the Electrum server, the community's Lightning node, the Moneysocket relay, a Nostr relay
//! (or the relays given), Nostr Wallet Connect on the Lightning node, and the Work service over
//! the community's token ledger with its redemption pool and Lightning deposits, and the web
//! dashboard with the REST API — until Ctrl-C or SIGTERM, then each stopped in turn. On regtest
//! a block is mined on a timer (to the Lightning node's wallet), so confirmations happen by
//! themselves.
//!
//! Settings come from a TOML file (`--config`, or `moip.toml` in the data directory when
//! present), then the environment (`MOIP_…`), then flags, each overriding the one before.
//!
//! The data directory:
//!
//! ```text
//! chain/          the embedded node's blocks, chainstate and RPC cookie
//! electrum/       the Electrum server's index
//! tls/            the self-signed certificate of the public listeners (made when TLS is on
//!                 and no certificate is given)
//! ln/seed         the Lightning node's seed, encrypted with the password
//! ln/ldk/         the Lightning node's channels and payments
//! work.seed       the Work service's Nostr key (as a seed), encrypted with the password
//! nwc.seed        the NWC service's Nostr key, likewise
//! nwc-connections.json  the apps connected over NWC, with their budgets
//! ledger.sqlite   the token ledger's journal: the money
//! deposits.json   deposit invoices and the accounts they mint to
//! work.sqlite     the Work service's log (a copy of its receipts on the relays)
//! operations/     the operations wallet that pays for supply commitments, and their record
//! api.token       the operator's token for the dashboard and the pairing API (mode 0600)
//! redemptions-seen.json  the redemption requests taken in the last 10 minutes
//!
//! The directory is the owner's alone (0700, and tightened if found open), and the token and
//! the state documents are created 0600, whatever the umask.
//! users/NAME.seed local users' Nostr keys, each sealed under that user's own password
//! moip.toml       settings, optional
//! ```
//!
//! Listening beyond loopback (`--bind 0.0.0.0`, say) turns TLS on ([`moip::tls`]): the
//! dashboard is HTTPS, Electrum SSL and WSS, the relays `wss://`; the node's RPC stays on
//! loopback (bitcoind's RPC has no TLS: reach it over SSH), Lightning is encrypted by its own
//! protocol, and the node's services reach each other over plain listeners on loopback.
//!
//! With `--database`, the ledger's journal, the Work log, the deposit book, the commitment
//! record and the NWC connections live in PostgreSQL instead ([`moip::state`]).

mod work_rules;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use moip_assets::ledger::{
    AccountId, AnyJournal, Ledger, PostgresJournal, SqliteJournal, TokenInfo, TokenLedger,
};
use moip_chain::rpc::{RpcAuth, RpcConfig, RpcServer};
use moip_chain::{ChainSource, EmbeddedNode, NodeConfig};
use moip_electrum::{ElectrumServer, ServerConfig};
use moip_lightning::PaymentRail;

use crate::bitcoind::BitcoindArgs;
use moip_lightning::{LightningConfig, LightningNode, Network, SeedSource};
use moip_moneysocket::relay::{Relay as MoneysocketRelay, RelayConfig, RelayHandle};
use moip_nwc::{NwcConfig, NwcService, StoreLocation};
use moip_work::community::Community;
use moip_work::identity::VerifierRules;
use moip_work::relay::{Relay as NostrRelay, RelayLimits};
use moip_work::service::{IngestLimits, ServiceConfig, WorkService};
use moip_work::task::Rules;
use moip_work::trust::Params;

use moip::tls::{NodeCert, TlsMode};
use serde::Deserialize;

use moip::commitments::{CommitConfig, Committer};
use moip::deposits::Deposits;
use moip::history::History;
use moip::hub::{Hub, NodeProbe, SharedLedger};
use moip::state::StateStore;
use moip::web::session::Sessions;
use moip::wiring::RailProvider;
use moip_assets::commitment::SupplyCommitment;
use moip_assets::pool::{PoolConfig, RedemptionPool};
use moip_moneysocket::provider::{Account, Denomination};

#[derive(Args)]
pub(crate) struct UpArgs {
    /// Settings file (TOML) [default: <data-dir>/moip.toml when present]
    #[arg(long, env = "MOIP_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ~/.moip]
    #[arg(long, env = "MOIP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address every listener binds to (loopback unless you choose otherwise)
    #[arg(long, env = "MOIP_BIND")]
    bind: Option<IpAddr>,
    /// TLS on the public listeners: auto (when --bind leaves loopback or a certificate is
    /// given), on, or off (only behind a proxy that terminates TLS)
    #[arg(long, env = "MOIP_TLS", value_enum)]
    tls: Option<TlsMode>,
    /// Host name other machines reach the node by, in the URLs it hands out
    /// [default: the bind address, or this machine's host name for 0.0.0.0]
    #[arg(long, env = "MOIP_PUBLIC_HOST")]
    public_host: Option<String>,
    /// PEM certificate chain for TLS [default: a self-signed one in <data-dir>/tls]
    #[arg(long, env = "MOIP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "MOIP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The community's id (its token id and the `h` tag of its Work events)
    #[arg(long, env = "MOIP_COMMUNITY")]
    community: Option<String>,
    /// Nostr relays for the Work service, comma-separated [default: an in-process relay]
    #[arg(long = "relay", env = "MOIP_RELAYS", value_delimiter = ',')]
    relays: Vec<String>,
    /// Seconds between regtest blocks (0: no mining)
    #[arg(long, env = "MOIP_MINE_EVERY")]
    mine_every: Option<u64>,
    /// Addresses the Electrum server does not limit, comma-separated [default: none; the
    /// node's own services have a listener of their own]
    #[arg(long, env = "MOIP_ELECTRUM_EXEMPT", value_delimiter = ',')]
    electrum_exempt: Vec<IpAddr>,
    /// Password of the seeds at rest (prefer the environment variable; asked when absent)
    #[arg(long, env = "MOIP_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// PostgreSQL for the ledger and the Work log instead of SQLite files
    /// (postgres://user:password@host/db)
    #[arg(long, env = "MOIP_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// A user's bitcoind instead of the embedded regtest node (then nothing is mined)
    #[command(flatten)]
    bitcoind: BitcoindArgs,
}

/// Ports; 0 picks a free one.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Ports {
    rpc: u16,
    electrum_tcp: u16,
    electrum_ws: u16,
    /// Electrum over TLS (with TLS on).
    electrum_ssl: u16,
    /// Electrum over WebSocket with TLS (with TLS on).
    electrum_wss: u16,
    lightning: u16,
    moneysocket: u16,
    nostr: u16,
    api: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            rpc: 18443,
            electrum_tcp: 50001,
            electrum_ws: 50003,
            electrum_ssl: 50002,
            electrum_wss: 50004,
            lightning: 9735,
            moneysocket: moip_moneysocket::relay::DEFAULT_PORT,
            nostr: 7777,
            api: 8080,
        }
    }
}

/// The community's token and its founding physical verifiers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CommunitySettings {
    id: Option<String>,
    name: Option<String>,
    symbol: Option<String>,
    /// Nostr public keys (hex) of the first physical verifiers.
    founders: Vec<String>,
    /// Seconds after an attestation quorum during which the task may be disputed.
    challenge_window_secs: Option<u64>,
    /// Whether every member's balance is shown to anyone (default: a member sees their own,
    /// the operator all).
    publish_balances: bool,
}

/// The supply's commitments on chain.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SupplySettings {
    /// The guardians' collateral descriptor, to check each commitment against.
    collateral: Option<String>,
    /// Blocks between commitments.
    commit_every_blocks: u32,
}

impl Default for SupplySettings {
    fn default() -> Self {
        SupplySettings {
            collateral: None,
            commit_every_blocks: 144,
        }
    }
}

/// What `moip.toml` may hold.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileSettings {
    bind: Option<IpAddr>,
    tls: Option<TlsMode>,
    public_host: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    relays: Vec<String>,
    mine_every_secs: Option<u64>,
    /// Addresses the Electrum server does not limit.
    electrum_exempt: Vec<IpAddr>,
    ports: Ports,
    community: CommunitySettings,
    /// The Work rules, the relay's and the service's limits (`work_rules`).
    rules: work_rules::RulesSettings,
    nostr_relay: work_rules::RelaySettings,
    ingest: work_rules::IngestSettings,
    supply: SupplySettings,
    database: Option<String>,
}

/// The settings in force, after file, environment and flags.
struct Settings {
    data_dir: PathBuf,
    bind: IpAddr,
    /// Whether the public listeners speak TLS.
    tls: bool,
    /// The host in the URLs handed out.
    public_host: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    relays: Vec<String>,
    mine_every: Duration,
    /// Addresses the Electrum server does not limit (the node's own services are not limited
    /// either: they use a listener of their own).
    electrum_exempt: Vec<IpAddr>,
    ports: Ports,
    token: TokenInfo,
    founders: Vec<AccountId>,
    /// Whether balances are shown to anyone.
    publish_balances: bool,
    rules: Rules,
    /// The in-process Nostr relay's limits.
    relay_limits: RelayLimits,
    /// What the Work service keeps of each author.
    ingest: IngestLimits,
    supply: SupplySettings,
    database: Option<String>,
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not valid settings", path.display()))
}

fn settings(args: &UpArgs) -> anyhow::Result<Settings> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::default_data_dir);
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None if data_dir.join("moip.toml").exists() => read_file(&data_dir.join("moip.toml"))?,
        None => FileSettings::default(),
    };
    let id = args
        .community
        .clone()
        .or(file.community.id.clone())
        .unwrap_or_else(|| "community".into());
    let token = TokenInfo {
        name: file.community.name.clone().unwrap_or_else(|| id.clone()),
        symbol: file
            .community
            .symbol
            .clone()
            .unwrap_or_else(|| "WORK".into()),
        id,
    };
    let founders = file
        .community
        .founders
        .iter()
        .map(|hex| {
            hex.parse::<AccountId>()
                .map_err(|e| anyhow::anyhow!("community.founders: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bind = args
        .bind
        .or(file.bind)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let tls = args.tls.or(file.tls).unwrap_or_default();
    if tls == TlsMode::Off && !bind.is_loopback() {
        tracing::warn!("TLS is off on {bind}: only behind a proxy that terminates TLS");
    }
    let public_host = args
        .public_host
        .clone()
        .or(file.public_host.clone())
        .unwrap_or_else(|| default_public_host(bind));
    let (tls_cert, tls_key) = match (args.tls_cert.clone(), args.tls_key.clone()) {
        (None, None) => (file.tls_cert.clone(), file.tls_key.clone()),
        given => given,
    };
    Ok(Settings {
        data_dir,
        bind,
        tls: tls.applies(bind, tls_cert.is_some()),
        public_host,
        tls_cert,
        tls_key,
        relays: if args.relays.is_empty() {
            file.relays
        } else {
            args.relays.clone()
        },
        mine_every: Duration::from_secs(args.mine_every.or(file.mine_every_secs).unwrap_or(10)),
        electrum_exempt: if args.electrum_exempt.is_empty() {
            file.electrum_exempt
        } else {
            args.electrum_exempt.clone()
        },
        ports: file.ports,
        token,
        founders,
        publish_balances: file.community.publish_balances,
        rules: work_rules::rules(&file.rules, file.community.challenge_window_secs)?,
        relay_limits: work_rules::relay_limits(&file.nostr_relay)?,
        ingest: work_rules::ingest_limits(&file.ingest)?,
        supply: file.supply.clone(),
        database: match args.database.clone().or(file.database.clone()) {
            Some(url)
                if !(url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.contains('=')) =>
            {
                bail!(
                    "database: PostgreSQL is given as postgres://… or host=… dbname=…, not {:?}",
                    redacted(&url)
                )
            }
            other => other,
        },
    })
}

/// The host other machines name: the bind address, or for the unspecified address this
/// machine's host name (`localhost` where none is known).
fn default_public_host(bind: IpAddr) -> String {
    if !bind.is_unspecified() {
        return bind.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `node_id@host:port` for peers: a listener on every interface is named by `public_host`.
fn peer_address(address: &moip_lightning::PeerAddress, public_host: &str) -> String {
    use moip_lightning::ldk_node::lightning::ln::msgs::SocketAddress;
    let any_port = match &address.address {
        SocketAddress::TcpIpV4 { addr, port } if *addr == [0; 4] => Some(*port),
        SocketAddress::TcpIpV6 { addr, port } if *addr == [0; 16] => Some(*port),
        _ => None,
    };
    match any_port {
        Some(port) => {
            let hostport = url("tcp", public_host, port);
            format!("{}@{}", address.node_id, &hostport["tcp://".len()..])
        }
        None => address.to_string(),
    }
}

/// `scheme://host:port`, with an IPv6 host in brackets.
fn url(scheme: &str, host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

fn password(args: &UpArgs) -> anyhow::Result<String> {
    match &args.password {
        Some(p) => Ok(p.clone()),
        None => Ok(rpassword::prompt_password(
            "Password of the node's seeds: ",
        )?),
    }
}

/// The ledger — in PostgreSQL at `database` when given, else in the SQLite file `path` —
/// created for `token` when new; an existing ledger must be for it.
fn open_ledger(
    database: Option<&str>,
    path: &Path,
    token: &TokenInfo,
) -> anyhow::Result<Ledger<AnyJournal>> {
    let (store, place) = match database {
        Some(url) => (
            AnyJournal::Postgres(Box::new(
                PostgresJournal::connect(url, &token.id).context("connecting to PostgreSQL")?,
            )),
            format!("the database's ledger {:?}", token.id),
        ),
        None => (
            AnyJournal::Sqlite(SqliteJournal::open(path)?),
            path.display().to_string(),
        ),
    };
    let ledger = Ledger::open(store)?;
    match ledger.token() {
        Some(existing) if existing.id == token.id => Ok(ledger),
        Some(existing) => bail!(
            "{place} is the ledger of community {:?}, not {:?}",
            existing.id,
            token.id
        ),
        None => Ok(Ledger::create(ledger.into_store(), token.clone())?),
    }
}

/// A database address with its password hidden, for printing: `postgres://user:***@host/db`
/// or `host=… password=*** …`.
fn redacted(url: &str) -> String {
    if !url.contains("://") {
        return url
            .split_whitespace()
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The chain under the node: the embedded one with its RPC, or a user's bitcoind.
enum Chain {
    Embedded { node: EmbeddedNode, rpc: RpcServer },
    Bitcoind,
}

/// Everything `up` runs, to stop in turn.
struct Running {
    chain: Chain,
    electrum: ElectrumServer,
    lightning: LightningNode,
    moneysocket: RelayHandle,
    nostr: Option<NostrRelay>,
    nwc: Arc<NwcService>,
    work: Arc<WorkService<SharedLedger>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    api: (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ),
    miner: Option<tokio::task::JoinHandle<()>>,
}

pub(crate) async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let s = settings(&args)?;
    let password = password(&args)?;
    // The data directory holds the money (ledger, seeds, the operator's token): the owner's
    // alone, whatever the umask; one left open to others is tightened.
    moip::secrets::private_dir(&s.data_dir)
        .with_context(|| format!("making {} private (0700)", s.data_dir.display()))?;
    let at = |port: u16| SocketAddr::new(s.bind, port);
    // With TLS the public listeners are TLS-only; the node's own services use plain ones here.
    let loopback = |port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let cert = if s.tls {
        let mut names = vec![s.public_host.clone()];
        if !s.bind.is_unspecified() && s.bind.to_string() != s.public_host {
            names.push(s.bind.to_string());
        }
        names.retain(|n| n != "localhost" && n != "127.0.0.1");
        let cert = NodeCert::open(&s.data_dir, s.tls_cert.clone(), s.tls_key.clone(), names)
            .context("preparing TLS")?;
        Some(cert)
    } else {
        None
    };
    let tls_config = cert.as_ref().map(|c| Arc::clone(&c.config));

    // L1: the chain (embedded, with its RPC, or the user's bitcoind), the Electrum server.
    let (chain, source): (Chain, Arc<dyn ChainSource>) = match args.bitcoind.connect().await? {
        Some(bitcoind) => (Chain::Bitcoind, Arc::new(bitcoind)),
        None => {
            let node = tokio::task::spawn_blocking({
                let dir = s.data_dir.join("chain");
                move || EmbeddedNode::open(NodeConfig::new(dir))
            })
            .await?
            .context("opening the embedded node")?;
            let rpc = RpcServer::start(
                node.clone(),
                RpcConfig {
                    // bitcoind's RPC has no TLS: it stays on this machine when the rest is public.
                    bind: if s.tls {
                        loopback(s.ports.rpc)
                    } else {
                        at(s.ports.rpc)
                    },
                    auth: RpcAuth::Cookie {
                        path: node.data_dir().join(".cookie"),
                    },
                    rest: true,
                },
            )
            .await
            .context("starting the node's RPC server")?;
            let source = Arc::new(node.clone());
            (Chain::Embedded { node, rpc }, source)
        }
    };
    let network = source.network();
    let mut config = ServerConfig::new(s.data_dir.join("electrum"));
    match &cert {
        Some(cert) => {
            config.tcp = Some(loopback(s.ports.electrum_tcp));
            config.ws = None;
            config.tls = Some(at(s.ports.electrum_ssl));
            config.wss = Some(at(s.ports.electrum_wss));
            config.tls_cert = Some(cert.cert.clone());
            config.tls_key = Some(cert.key.clone());
        }
        None => {
            config.tcp = Some(at(s.ports.electrum_tcp));
            config.ws = Some(at(s.ports.electrum_ws));
            config.tls = None;
            config.wss = None;
        }
    }
    // Every client is limited, loopback ones too (a Tor hidden service or a reverse proxy
    // delivers strangers from there), except the addresses the operator lists and the node's
    // own services, which sync through a listener of their own on an unadvertised port.
    config.limits.exempt = s.electrum_exempt.clone();
    config.own_tcp = Some(loopback(0));
    let electrum = ElectrumServer::start(Arc::clone(&source), config)
        .await
        .context("starting the Electrum server")?;
    let electrum_tcp = electrum
        .addresses()
        .tcp
        .context("the Electrum server has no TCP listener")?;
    let electrum_own = electrum
        .addresses()
        .own_tcp
        .context("the Electrum server has no listener for the node's own services")?;

    // L2: the community's Lightning node, synced through our own Electrum server.
    let ln_dir = s.data_dir.join("ln");
    moip::secrets::private_dir(&ln_dir)?;
    let seed = ln_dir.join("seed");
    if !seed.exists() {
        moip_lightning::create_seed_file(&seed, &password)
            .with_context(|| format!("creating {}", seed.display()))?;
    }
    let lightning = tokio::task::spawn_blocking({
        let mut config = LightningConfig::new(
            network,
            ln_dir.join("ldk"),
            format!("tcp://{electrum_own}"),
            SeedSource::EncryptedFile {
                path: seed,
                password: password.clone(),
            },
        );
        config.listen = vec![at(lightning_port(s.ports.lightning))];
        config.alias = Some(s.token.id.clone());
        if network == Network::Regtest {
            // Regtest blocks come every few seconds: follow them as closely as the node allows.
            config.sync_interval = Some(moip_lightning::MIN_SYNC_INTERVAL);
        }
        move || LightningNode::start(config)
    })
    .await?
    .context("starting the Lightning node")?;

    // L4: the supply's commitments, paid by the node's operations wallet. A fresh embedded
    // regtest chain gets a matured coinbase for that wallet and one for the Lightning node, so
    // a new community can commit and open channels at once.
    // The node's small documents live where its ledger does (files, or the database).
    let state = StateStore::open(s.database.as_deref(), &s.token.id, &s.data_dir)
        .context("opening the node's state")?;
    let committer = {
        let config = CommitConfig {
            dir: s.data_dir.join("operations"),
            password: password.clone(),
            network,
            electrum_url: format!("tcp://{electrum_own}"),
            collateral: s.supply.collateral.clone(),
            every: s.supply.commit_every_blocks.max(1),
            record: state.document("operations/commitments.json"),
        };
        Arc::new(
            tokio::task::spawn_blocking(move || Committer::open(config))
                .await?
                .context("opening the operations wallet")?,
        )
    };
    if let Chain::Embedded { node, .. } = &chain {
        if source.tip()?.height < 101 {
            let operations = committer.address()?.script_pubkey();
            let ln = lightning.new_address()?.script_pubkey();
            let node = node.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                node.generate(1, &operations)?;
                node.generate(100, &ln)?;
                Ok(())
            })
            .await??;
        }
    }

    // L3: the Moneysocket relay.
    let moneysocket = MoneysocketRelay::bind(RelayConfig {
        bind: at(s.ports.moneysocket),
        tls: tls_config.clone(),
        ..RelayConfig::default()
    })
    .await
    .context("starting the Moneysocket relay")?;

    // L5: Nostr (in process unless relays are given) and the Work service over the ledger.
    // `relays` as the node's services reach them, `public_relays` as apps and members do.
    let (nostr, relays, public_relays) = if s.relays.is_empty() {
        let relay = match &tls_config {
            Some(tls) => {
                let public = at(s.ports.nostr);
                let limits = s.relay_limits.clone();
                let host = &s.public_host;
                NostrRelay::start_public_with(public, Arc::clone(tls), host, loopback(0), limits)
                    .await
            }
            None => NostrRelay::start_with(at(s.ports.nostr), s.relay_limits.clone()).await,
        }
        .context("starting the Nostr relay")?;
        let (url, public) = (relay.url().to_owned(), relay.public_url().to_owned());
        (Some(relay), vec![url], vec![public])
    } else {
        (None, s.relays.clone(), s.relays.clone())
    };
    let ledger = {
        let (database, path, token) = (
            s.database.clone(),
            s.data_dir.join("ledger.sqlite"),
            s.token.clone(),
        );
        let ledger =
            tokio::task::spawn_blocking(move || open_ledger(database.as_deref(), &path, &token))
                .await??;
        Arc::new(Mutex::new(ledger))
    };
    // L3: Nostr Wallet Connect on the community's node, on the same relays. Each app pays
    // from its own sub-account of the ledger, which the operator funds; never the collateral.
    let nwc_keys = moip::secrets::sealed_nostr_keys(&s.data_dir.join("nwc.seed"), &password)?;
    let mut nwc_config = NwcConfig::new(relays.clone());
    nwc_config.uri_relays = public_relays.clone();
    nwc_config.store = Some(StoreLocation::Custom(Arc::new(
        state.document("nwc-connections.json"),
    )));
    let apps = moip::wiring::LedgerApps::new(Arc::clone(&ledger));
    nwc_config.accounts = Some(Arc::clone(&apps) as Arc<dyn moip_nwc::AppAccounts>);
    let nwc_rail: Arc<dyn PaymentRail> = Arc::new(lightning.clone());
    // Apps' payments whose outcome the NWC wait did not learn, before this start too, are
    // concluded from the node's own records as they end.
    apps.spawn_resolver(Arc::clone(&nwc_rail));
    // The NWC service answers every app with its one key: it gets the relay's member share.
    if let Some(relay) = &nostr {
        relay.members().keep(nwc_keys.public_key());
    }
    let nwc = NwcService::start(nwc_rail, nwc_keys, nwc_config)
        .await
        .context("starting the NWC service")?;
    let keys = moip::secrets::sealed_nostr_keys(&s.data_dir.join("work.seed"), &password)?;
    let mut work_config = ServiceConfig::new(relays.clone(), keys);
    work_config.log = Some(s.data_dir.join("work.sqlite"));
    work_config.database = s.database.clone();
    // The dashboard shows the scores as last published: keep them fresh.
    work_config.scores_every = Duration::from_secs(3);
    // The keys the service reads trust from (its own first) get the relay's larger share.
    work_config.relay_members = nostr.as_ref().map(NostrRelay::members);
    work_config.limits = s.ingest.clone();
    if s.founders.is_empty() {
        tracing::warn!("no community.founders set: nobody can certify physical verifiers");
    }
    let community = Community::new(
        &s.token.id,
        Arc::clone(&ledger),
        &s.founders,
        s.rules.clone(),
        VerifierRules::default(),
        Params::default(),
    );
    let work = Arc::new(
        WorkService::start(work_config, community)
            .await
            .context("starting the Work service")?,
    );

    // L4: the redemption pool and deposits that mint, over the same ledger and node.
    let rail: Arc<dyn PaymentRail> = Arc::new(lightning.clone());
    let pool = Arc::new(
        RedemptionPool::new(
            Arc::clone(&ledger),
            Arc::clone(&rail),
            PoolConfig::default(),
        )
        .context("opening the redemption pool")?,
    );
    for (id, status) in pool.recover().await {
        tracing::info!("redemption {id} after the restart: {status:?}");
    }
    let deposits = Arc::new(
        Deposits::open(
            Arc::clone(&rail),
            Arc::clone(&ledger),
            Some(state.document("deposits.json")),
        )
        .context("opening the deposit book")?,
    );
    let background = vec![
        tokio::spawn(Arc::clone(&deposits).run()),
        tokio::spawn(process_queue(Arc::clone(&pool))),
        tokio::spawn(commit_supply(
            Arc::clone(&committer),
            Arc::clone(&source),
            Arc::clone(&ledger),
        )),
    ];

    // L3: the node's Moneysocket account, served on the beacons the operator makes.
    let moneysocket_url = if s.tls {
        url("wss", &s.public_host, moneysocket.local_addr().port())
    } else {
        format!("ws://{}", moneysocket.local_addr())
    };
    // What wallets are told to connect to.
    let electrum_public = match electrum.addresses().tls {
        Some(ssl) if s.tls => url("ssl", &s.public_host, ssl.port()),
        _ => format!("tcp://{electrum_tcp}"),
    };
    let account = Account::new(RailProvider::new(Arc::clone(&rail)), Denomination::Bitcoin);
    // The beacons made before the restart are served again, their budgets where they were.
    // Each beacon spends its own account in the ledger, never the collateral.
    let beacons = moip::beacons::Beacons::open(
        state.document("beacons.json"),
        Arc::clone(&rail),
        Arc::clone(&ledger),
    )
    .context("opening the beacon book")?;
    beacons.serve_all(
        &moneysocket_url,
        &moip::pairing::ProviderPath::InProcess(moneysocket.local_connector()),
        &account,
    );
    tokio::spawn(Arc::clone(&beacons).run());

    // L5: the dashboard and the REST API.
    let listener = tokio::net::TcpListener::bind(at(s.ports.api))
        .await
        .context("binding the dashboard")?;
    let api_addr = listener.local_addr()?;
    let token_path = s.data_dir.join("api.token");
    let admin_token = operator_token(&token_path)?;
    let nwc = Arc::new(nwc);
    let hub = Arc::new(Hub {
        work: Arc::clone(&work),
        ledger: Arc::clone(&ledger),
        pool,
        deposits,
        commitments: committer,
        node: NodeProbe {
            chain: Arc::clone(&source),
            electrum: electrum.status(),
            electrum_url: electrum_public,
            lightning: lightning.clone(),
            moneysocket: moneysocket.metrics_source(),
            moneysocket_url: moneysocket_url.clone(),
            moneysocket_relay: moneysocket.local_connector(),
            nostr_relays: public_relays.clone(),
        },
        nwc: Arc::clone(&nwc),
        moneysocket: account,
        beacons,
        admin_token,
        sessions: Sessions::default(),
        https: s.tls,
        users: s.data_dir.join("users"),
        history: History::default(),
        publish_balances: s.publish_balances,
        redemptions_seen: moip::state::SeenRequests::open(Some(
            state.document("redemptions-seen.json"),
        ))
        .context("opening the record of redemption requests taken")?,
    });
    let (stop_api, stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(moip::api::serve(
        listener,
        moip::web::router(hub),
        tls_config,
        async move {
            let _ = stopped.await;
        },
    ));

    // Regtest blocks on a timer, paid to the Lightning node's wallet (the embedded chain only).
    let miner = match &chain {
        Chain::Embedded { node, .. } if !s.mine_every.is_zero() => {
            let script = lightning.new_address()?.script_pubkey();
            let chain = node.clone();
            let every = s.mine_every;
            Some(tokio::spawn(async move {
                let mut interval = tokio::time::interval(every);
                interval.tick().await;
                loop {
                    interval.tick().await;
                    let (chain, script) = (chain.clone(), script.clone());
                    match tokio::task::spawn_blocking(move || chain.generate(1, &script)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::warn!("mining a block failed: {e}"),
                        Err(e) => tracing::warn!("the miner stopped: {e}"),
                    }
                }
            }))
        }
        _ => None,
    };

    let tip = source.tip()?;
    println!(
        "moip up: community {:?}, {network} at height {}, data in {}",
        s.token.id,
        tip.height,
        s.data_dir.display()
    );
    match &chain {
        Chain::Embedded { rpc, .. } => {
            // The same two lines as `moip node`, which scripts and tests read.
            println!("RPC and REST: {}", rpc.url());
            if let Some(cookie) = rpc.cookie_path() {
                println!("cookie: {}", cookie.display());
            }
        }
        Chain::Bitcoind => println!(
            "  bitcoind: {}",
            args.bitcoind.bitcoind_rpc.as_deref().unwrap_or_default()
        ),
    }
    println!("  electrum tcp: tcp://{electrum_tcp}");
    let electrum_addresses = electrum.addresses();
    if let Some(ws) = electrum_addresses.ws {
        println!("  electrum ws: ws://{ws}");
    }
    if let Some(ssl) = electrum_addresses.tls {
        println!("  electrum ssl: {}", url("ssl", &s.public_host, ssl.port()));
    }
    if let Some(wss) = electrum_addresses.wss {
        println!("  electrum wss: {}", url("wss", &s.public_host, wss.port()));
    }
    for address in lightning.peer_addresses() {
        println!("  lightning: {}", peer_address(&address, &s.public_host));
    }
    println!("  moneysocket relay: {moneysocket_url}");
    for url in &public_relays {
        println!("  nostr relay: {url}");
    }
    println!("  nwc service: {}", nwc.public_key());
    println!("  work service: {}", work.public_key());
    if let Some(url) = &s.database {
        println!("  database: {}", redacted(url));
    }
    let dashboard = if s.tls {
        url("https", &s.public_host, api_addr.port())
    } else {
        format!("http://{api_addr}")
    };
    println!("  dashboard: {dashboard}/");
    println!("  api: {dashboard}/api/openapi.json");
    if let Some(cert) = &cert {
        println!(
            "  tls certificate: {} (SHA-256 {})",
            cert.cert.display(),
            cert.fingerprint
        );
    }
    println!("  operator token: {}", token_path.display());
    println!(
        "moip up: ready in {:.1} s (Ctrl-C stops)",
        started.elapsed().as_secs_f64()
    );

    let running = Running {
        chain,
        electrum,
        lightning,
        moneysocket,
        nostr,
        nwc,
        work,
        background,
        api: (stop_api, api),
        miner,
    };
    let rpc = match &running.chain {
        Chain::Embedded { rpc, .. } => Some(rpc),
        Chain::Bitcoind => None,
    };
    wait_for_stop(rpc).await;
    stop(running).await
}

/// Pays the redemption queue as soon as a redemption is queued, and every few seconds for
/// those the limits held and the payouts parked (see `moip_assets::pool`).
async fn process_queue(pool: Arc<RedemptionPool<AnyJournal>>) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = pool.woken() => {}
        }
        for (id, status) in pool.process().await {
            tracing::info!("redemption {id}: {status:?}");
        }
    }
}

/// Commits the supply root once an epoch, and checks the commitments as they confirm.
async fn commit_supply(
    committer: Arc<Committer>,
    source: Arc<dyn ChainSource>,
    ledger: SharedLedger,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        interval.tick().await;
        let Ok(tip) = source.tip() else { continue };
        let commitment: SupplyCommitment = ledger.supply_root().into();
        let committer = Arc::clone(&committer);
        match tokio::task::spawn_blocking(move || committer.round(tip.height, &commitment)).await {
            Ok(Ok(Some(txid))) => tracing::info!("supply root committed in {txid}"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!("the supply commitment: {e}"),
            Err(e) => tracing::warn!("the supply commitment stopped: {e}"),
        }
    }
}

/// The operator's token, made on first start and readable by the owner only: created with
/// mode 0600 (never written then narrowed), and an existing one open to others tightened.
fn operator_token(path: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::fs::read_to_string(path) {
        let token = token.trim().to_owned();
        if token.len() >= 32 {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        "{} was open to other users (mode {:o}): tightened to 0600",
                        path.display(),
                        mode & 0o777
                    );
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                }
            }
            return Ok(token);
        }
    }
    let token = moip::web::session::random_token();
    moip::secrets::write_private(path, token.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// The Lightning port; 0 picks a free one now (the node needs a concrete address).
fn lightning_port(port: u16) -> u16 {
    if port != 0 {
        return port;
    }
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// Until the RPC `stop` (when there is an embedded chain).
async fn stop_requested(rpc: Option<&RpcServer>) {
    match rpc {
        Some(rpc) => rpc.stop_requested().await,
        None => std::future::pending().await,
    }
}

async fn wait_for_stop(rpc: Option<&RpcServer>) {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!("no SIGTERM handler: {e}");
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = stop_requested(rpc) => {}
                    }
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = stop_requested(rpc) => tracing::info!("stop requested over RPC"),
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
        _ = stop_requested(rpc) => tracing::info!("stop requested over RPC"),
    }
}

/// Stops everything, the top layers first.
async fn stop(running: Running) -> anyhow::Result<()> {
    if let Some(miner) = running.miner {
        miner.abort();
    }
    let (stop_api, api) = running.api;
    let _ = stop_api.send(());
    api.await?.context("the dashboard")?;
    for task in running.background {
        task.abort();
    }
    running.work.shutdown().await;
    // The dashboard held the other handle; with it stopped, NWC stops here (or on drop).
    if let Ok(nwc) = Arc::try_unwrap(running.nwc) {
        nwc.shutdown().await;
    }
    if let Some(nostr) = running.nostr {
        nostr.shutdown();
    }
    running.moneysocket.shutdown().await;
    let lightning = running.lightning;
    tokio::task::spawn_blocking(move || lightning.stop())
        .await?
        .context("stopping the Lightning node")?;
    running.electrum.shutdown().await;
    if let Chain::Embedded { node, rpc } = running.chain {
        rpc.shutdown().await;
        tokio::task::spawn_blocking(move || node.shutdown()).await??;
    }
    println!("moip up: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        up: UpArgs,
    }

    fn settings_for(file: &str, flags: &[&str]) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("moip.toml");
        std::fs::write(&path, file)?;
        let mut argv = vec![
            "moip-up".to_owned(),
            "--config".into(),
            path.display().to_string(),
            "--data-dir".into(),
            dir.path().display().to_string(),
        ];
        argv.extend(flags.iter().map(|f| f.to_string()));
        settings(&Cli::try_parse_from(argv)?.up)
    }

    #[test]
    fn the_file_gives_settings_and_flags_override_it() {
        let file = r#"
bind = "127.0.0.2"
mine_every_secs = 3
electrum_exempt = ["10.0.0.7"]
[ports]
rpc = 1234
[community]
id = "bakery"
founders = ["4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa"]
"#;
        let s = settings_for(file, &[]).expect("settings");
        assert_eq!(s.token.id, "bakery");
        assert_eq!(s.token.symbol, "WORK");
        assert_eq!(s.bind, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(s.ports.rpc, 1234);
        assert_eq!(
            s.ports.electrum_tcp, 50001,
            "unset ports keep their defaults"
        );
        assert_eq!(s.mine_every, Duration::from_secs(3));
        assert_eq!(s.electrum_exempt, [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))]);
        assert_eq!(s.founders.len(), 1);
        assert!(
            settings_for("", &[])
                .expect("settings")
                .electrum_exempt
                .is_empty(),
            "no address is exempt from Electrum's limits by default"
        );

        let s = settings_for(
            file,
            &[
                "--community",
                "mill",
                "--bind",
                "127.0.0.1",
                "--mine-every",
                "0",
                "--electrum-exempt",
                "127.0.0.9,::1",
            ],
        )
        .expect("settings");
        assert_eq!(s.token.id, "mill");
        assert_eq!(
            s.electrum_exempt,
            [
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
                IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(s.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(s.mine_every.is_zero());
    }

    #[test]
    fn tls_comes_on_beyond_loopback_unless_turned_off() {
        let s = settings_for("", &[]).expect("settings");
        assert!(!s.tls, "loopback: plain");
        assert_eq!(s.public_host, "127.0.0.1");
        let s = settings_for("bind = \"192.168.1.5\"\n", &[]).expect("settings");
        assert!(s.tls, "a LAN address: TLS");
        assert_eq!(s.public_host, "192.168.1.5");
        let s = settings_for("bind = \"0.0.0.0\"\n", &["--public-host", "node.example"])
            .expect("settings");
        assert!(s.tls);
        assert_eq!(s.public_host, "node.example");
        let s = settings_for("bind = \"0.0.0.0\"\ntls = \"off\"\n", &[]).expect("settings");
        assert!(!s.tls, "off when told, for a proxy in front");
        let s = settings_for("tls = \"on\"\n", &[]).expect("settings");
        assert!(s.tls, "on when told, also on loopback");
        let s = settings_for("tls = \"sometimes\"\n", &[]);
        assert!(s.is_err(), "an unknown mode is refused");
        let s = settings_for("", &["--tls-cert", "/etc/cert.pem"]);
        assert!(s.is_err(), "a certificate without its key is refused");
        let s =
            settings_for("tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n", &[]).expect("settings");
        assert!(s.tls, "a certificate given asks for TLS");
    }

    #[test]
    fn peers_are_told_the_public_host_for_a_listener_on_every_interface() {
        let key = "03c2d85a2c7f4873f4ced9b91bc4e9cabc134aed37d5cf1897c7a1b5369a1d70a2";
        let at = |a: &str| -> moip_lightning::PeerAddress {
            format!("{key}@{a}").parse().expect("an address")
        };
        assert_eq!(
            peer_address(&at("0.0.0.0:9735"), "node.example"),
            format!("{key}@node.example:9735")
        );
        assert_eq!(
            peer_address(&at("[::]:9735"), "::1"),
            format!("{key}@[::1]:9735")
        );
        assert_eq!(
            peer_address(&at("10.0.0.2:9735"), "node.example"),
            format!("{key}@10.0.0.2:9735")
        );
    }

    #[test]
    fn urls_bracket_ipv6_hosts() {
        assert_eq!(url("wss", "::1", 7777), "wss://[::1]:7777");
        assert_eq!(
            url("ssl", "node.example", 50002),
            "ssl://node.example:50002"
        );
        assert_eq!(url("https", "10.0.0.2", 8080), "https://10.0.0.2:8080");
    }

    #[test]
    fn database_passwords_are_never_printed() {
        assert_eq!(
            redacted("postgres://moip:s3cret@127.0.0.1:5432/moip"),
            "postgres://moip:***@127.0.0.1:5432/moip"
        );
        assert_eq!(
            redacted("postgres://127.0.0.1/moip"),
            "postgres://127.0.0.1/moip"
        );
        let refused = settings_for("database = \"mysql://u:pw@h/db\"\n", &[])
            .err()
            .expect("refused");
        let text = format!("{refused:#}");
        assert!(
            text.contains("postgres://") && !text.contains("pw"),
            "{text}"
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let unknown = settings_for("colour = \"blue\"\n", &[])
            .err()
            .expect("refused");
        assert!(format!("{unknown:#}").contains("colour"), "{unknown:#}");
        let founder = settings_for("[community]\nfounders = [\"nope\"]\n", &[])
            .err()
            .expect("refused");
        assert!(
            format!("{founder:#}").contains("community.founders"),
            "{founder:#}"
        );
        let port = settings_for("[ports]\nrpc = 70000\n", &[])
            .err()
            .expect("refused");
        assert!(format!("{port:#}").contains("rpc"), "{port:#}");
    }
}
