//! `moip ln`: a Lightning node on LDK (crates/lightning), synced through moip's Electrum server
//! by default.
//!
//! `moip ln run` keeps the node up, prints its events and answers the other commands on a
//! control socket in its data directory (see [`control`]). Without a running node, those
//! commands start the node from its data directory, do one thing and stop it; the node's state
//! (channels, payments) lives in its SQLite database either way.

mod control;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use moip::wiring::RailProvider;
use moip_lightning::{
    parse_node_id, ChainSourceConfig, LightningConfig, LightningNode, Network, PaymentRail,
    PeerAddress, RouteLimits, SeedSource,
};
use moip_moneysocket::provider::{Account, Denomination, SpendingLimit};
use moip_nwc::{Budget, Keys, NwcConfig, NwcService, PublicKey};
use serde::{Deserialize, Serialize};

/// How long one-shot commands wait for peers to reconnect and for payments to complete.
const WAIT: Duration = Duration::from_secs(60);

#[derive(Args)]
pub(crate) struct LnArgs {
    /// Node directory: the seed file and ldk-node's database [default: ~/.moip/ln]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// regtest, signet, testnet or bitcoin
    #[arg(long, default_value = "regtest")]
    network: String,
    /// Address to accept peers on (loopback unless you choose otherwise)
    #[arg(long, default_value = "127.0.0.1:9735")]
    listen: SocketAddr,
    /// Alias announced to the network; needed to announce channels and route for others
    #[arg(long)]
    alias: Option<String>,
    /// Electrum server (the default chain source: moip's own)
    #[arg(long, default_value = "tcp://127.0.0.1:50001")]
    electrum: String,
    /// Use an Esplora API instead of Electrum, e.g. https://blockstream.info/api
    #[arg(long, conflicts_with = "bitcoind_rpc")]
    esplora: Option<String>,
    /// Use a bitcoind's JSON-RPC (host:port) instead of Electrum
    #[arg(long, requires = "bitcoind_user")]
    bitcoind_rpc: Option<String>,
    /// bitcoind RPC user
    #[arg(long)]
    bitcoind_user: Option<String>,
    /// bitcoind RPC password
    #[arg(long, env = "MOIP_BITCOIND_PASSWORD", hide_env_values = true)]
    bitcoind_password: Option<String>,
    /// Nostr relay for the NWC wallet service that `run` starts (repeatable; none: no NWC)
    #[arg(long = "nwc-relay")]
    nwc_relays: Vec<String>,
    /// Moneysocket relay for the provider that `run` starts (`moip ln beacon` makes beacons)
    #[arg(long)]
    moneysocket_relay: Option<String>,
    /// Show the Moneysocket balance in a fiat currency too, at this rate: CODE:UNITS_PER_BTC,
    /// e.g. USD:60000
    #[arg(long, value_name = "CODE:RATE", value_parser = parse_fiat_rate)]
    fiat_rate: Option<Denomination>,
    /// The seed file's password (prompted for when absent)
    #[arg(long, env = "MOIP_LN_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[command(subcommand)]
    command: LnCommand,
}

/// How a payment may be routed (the options of every paying command).
#[derive(Args, Serialize, Deserialize, Debug, Clone, Copy)]
struct RouteArgs {
    /// Most to pay in routing fees
    #[arg(long)]
    max_fee_msat: Option<u64>,
    /// Most parts to split the payment into (LDK's default: 10)
    #[arg(long)]
    max_parts: Option<u8>,
}

impl From<RouteArgs> for RouteLimits {
    fn from(route: RouteArgs) -> RouteLimits {
        RouteLimits {
            max_fee_msat: route.max_fee_msat,
            max_parts: route.max_parts,
            ..RouteLimits::default()
        }
    }
}

/// A subcommand; serialisable so the CLI can hand it to a running node over the control socket.
#[derive(Subcommand, Serialize, Deserialize, Debug)]
enum LnCommand {
    /// Creates the node's seed: a new BIP39 mnemonic, encrypted under a password
    Init,
    /// Runs the node and prints its events until Ctrl-C
    Run,
    /// Node id, listening addresses, balances and channels
    Info,
    /// A new address of the node's on-chain wallet
    Address,
    /// Sends on-chain from the node's wallet
    SendOnchain { address: String, amount_sats: u64 },
    /// Opens a channel to <node id>@<host>:<port>
    Open {
        peer: String,
        amount_sats: u64,
        /// Amount given to the peer's side at opening
        #[arg(long)]
        push_msat: Option<u64>,
        /// Do not announce the channel (it will not route for others)
        #[arg(long)]
        private: bool,
    },
    /// Lists channels
    Channels,
    /// Closes a channel (by the user channel id `channels` shows)
    Close {
        user_channel_id: u128,
        /// Broadcast our commitment instead of negotiating; funds return after the CSV delay
        #[arg(long)]
        force: bool,
    },
    /// Creates a BOLT11 invoice
    Invoice {
        /// Amount in msat; omit for an any-amount invoice
        amount_msat: Option<u64>,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value_t = 3600)]
        expiry_secs: u32,
    },
    /// Pays a BOLT11 invoice
    Pay {
        invoice: String,
        /// Required for any-amount invoices
        #[arg(long)]
        amount_msat: Option<u64>,
        #[command(flatten)]
        route: RouteArgs,
    },
    /// Sends a spontaneous payment to a node
    Keysend {
        node_id: String,
        amount_msat: u64,
        #[command(flatten)]
        route: RouteArgs,
    },
    /// Creates a BOLT12 offer
    Offer {
        /// Amount in msat; omit to let the payer choose
        amount_msat: Option<u64>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Pays a BOLT12 offer
    PayOffer {
        offer: String,
        #[arg(long)]
        amount_msat: Option<u64>,
        #[command(flatten)]
        route: RouteArgs,
    },
    /// On-chain and Lightning balances
    Balance,
    /// Payment history
    Payments,
    /// Connects an app over Nostr Wallet Connect (needs `run --nwc-relay`); prints its URI
    NwcConnect {
        /// A name for the app
        name: String,
        #[command(flatten)]
        #[serde(flatten)]
        terms: crate::apps_cli::NwcTerms,
    },
    /// Lists NWC connections
    NwcList,
    /// Revokes an NWC connection by its client public key
    NwcRevoke { client: String },
    /// A new Moneysocket beacon for this node's wallet (needs `run --moneysocket-relay`)
    Beacon {
        /// Most that apps on this beacon may spend in all, in sat (omit: no limit)
        #[arg(long)]
        limit_sat: Option<u64>,
    },
}

fn password(args: &LnArgs, new: bool) -> anyhow::Result<String> {
    if let Some(password) = &args.password {
        return Ok(password.clone());
    }
    let first = rpassword::prompt_password("Lightning seed password: ")?;
    if new && rpassword::prompt_password("Again: ")? != first {
        bail!("the passwords differ");
    }
    Ok(first)
}

fn config(args: &LnArgs, data_dir: PathBuf) -> anyhow::Result<LightningConfig> {
    let network: Network = args
        .network
        .parse()
        .with_context(|| format!("unknown network {:?}", args.network))?;
    let seed = SeedSource::EncryptedFile {
        path: data_dir.join("seed"),
        password: password(args, false)?,
    };
    let mut config = LightningConfig::new(network, data_dir.join("ldk"), &args.electrum, seed);
    config.listen = vec![args.listen];
    config.alias = args.alias.clone();
    if let Some(url) = &args.esplora {
        config.chain = ChainSourceConfig::Esplora { url: url.clone() };
    } else if let Some(rpc) = &args.bitcoind_rpc {
        let (host, port) = rpc
            .rsplit_once(':')
            .context("--bitcoind-rpc takes host:port")?;
        config.chain = ChainSourceConfig::BitcoindRpc {
            host: host.to_string(),
            port: port.parse().context("--bitcoind-rpc port")?,
            user: args.bitcoind_user.clone().unwrap_or_default(),
            password: args.bitcoind_password.clone().unwrap_or_default(),
        };
    }
    Ok(config)
}

pub(crate) fn run(args: LnArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::default_data_dir().join("ln"));
    if let LnCommand::Init = args.command {
        std::fs::create_dir_all(&data_dir)?;
        let path = data_dir.join("seed");
        moip_lightning::create_seed_file(&path, &password(&args, true)?)
            .with_context(|| format!("creating {}", path.display()))?;
        println!("seed written to {} (encrypted)", path.display());
        return Ok(());
    }
    let socket = data_dir.join(control::SOCKET);
    if let LnCommand::Run = args.command {
        if control::is_live(&socket) {
            bail!("a node is already running in {}", data_dir.display());
        }
        let config = config(&args, data_dir.clone())?;
        let password = match &config.seed {
            SeedSource::EncryptedFile { password, .. } => password.clone(),
            SeedSource::Mnemonic(_) => String::new(),
        };
        let node = LightningNode::start(config).context("starting the node")?;
        let nwc = (!args.nwc_relays.is_empty()).then(|| NwcSetup {
            relays: args.nwc_relays.clone(),
            key_file: data_dir.join("nwc.seed"),
            store: data_dir.join("nwc-connections.json"),
            password,
        });
        let moneysocket = args.moneysocket_relay.clone().map(|relay| {
            let denomination = args.fiat_rate.clone().unwrap_or(Denomination::Bitcoin);
            (relay, denomination)
        });
        let result = run_node(&node, &socket, nwc, moneysocket);
        control::remove(&socket);
        node.stop().context("stopping the node")?;
        return result;
    }
    // A running node answers for its data directory; otherwise start the node for this one.
    if let Some(output) = control::forward(&socket, &args.command)? {
        print!("{output}");
        return Ok(());
    }
    let node = LightningNode::start(config(&args, data_dir)?).context("starting the node")?;
    let mut output = String::new();
    let ctx = Ctx {
        node: node.clone(),
        nwc: None,
        moneysocket: None,
    };
    let result = command(&ctx, args.command, &mut output);
    print!("{output}");
    node.stop().context("stopping the node")?;
    result
}

/// What `run` needs to start the NWC wallet service.
struct NwcSetup {
    relays: Vec<String>,
    /// The service's key, sealed like the node's seed (under the same password).
    key_file: PathBuf,
    /// Its connections (public keys and budgets only).
    store: PathBuf,
    password: String,
}

/// A running node and what runs beside it, for the commands.
pub(crate) struct Ctx {
    node: LightningNode,
    nwc: Option<Arc<NwcService>>,
    moneysocket: Option<Moneysocket>,
}

/// The node's Moneysocket account, served on every beacon made for it.
struct Moneysocket {
    relay: String,
    account: Arc<Account>,
    runtime: tokio::runtime::Handle,
}

/// The NWC service's Nostr key, sealed in its own file.
fn nwc_keys(setup: &NwcSetup) -> anyhow::Result<Keys> {
    Ok(moip::secrets::sealed_nostr_keys(
        &setup.key_file,
        &setup.password,
    )?)
}

/// `moip ln run`: serves the control socket (and NWC, if asked) and prints events until Ctrl-C.
fn run_node(
    node: &LightningNode,
    socket: &std::path::Path,
    nwc: Option<NwcSetup>,
    moneysocket: Option<(String, Denomination)>,
) -> anyhow::Result<()> {
    println!("node id: {}", node.node_id());
    for peer in node.peer_addresses() {
        println!("listening: {peer}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("moip-ln-run")
        .enable_all()
        .build()?;
    let nwc = match nwc {
        None => None,
        Some(setup) => {
            let keys = nwc_keys(&setup).context("the NWC service key")?;
            let mut config = NwcConfig::new(setup.relays);
            config.store = Some(setup.store.into());
            let rail: Arc<dyn PaymentRail> = Arc::new(node.clone());
            let service = runtime
                .block_on(NwcService::start(rail, keys, config))
                .context("starting the NWC service")?;
            println!("nwc service: {}", service.public_key());
            Some(Arc::new(service))
        }
    };
    let moneysocket = match moneysocket {
        None => None,
        Some((relay, denomination)) => {
            moip::pairing::relay_location(&relay)?;
            let _entered = runtime.enter();
            let backend = RailProvider::new(Arc::new(node.clone()));
            println!("moneysocket relay: {relay}");
            Some(Moneysocket {
                relay,
                account: Account::new(backend, denomination),
                runtime: runtime.handle().clone(),
            })
        }
    };
    let ctx = Arc::new(Ctx {
        node: node.clone(),
        nwc,
        moneysocket,
    });
    control::serve(socket, Arc::clone(&ctx))
        .with_context(|| format!("control socket {}", socket.display()))?;
    println!("control socket: {}", socket.display());
    let mut events = node.subscribe();
    runtime.block_on(async {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                event = events.recv() => match event {
                    Ok(event) => println!("{event:?}"),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        println!("({n} events skipped)")
                    }
                    Err(_) => break,
                },
            }
        }
    });
    Ok(())
}

/// `--fiat-rate USD:60000`.
fn parse_fiat_rate(text: &str) -> Result<Denomination, String> {
    let (code, rate) = text
        .split_once(':')
        .ok_or_else(|| "write CODE:UNITS_PER_BTC, e.g. USD:60000".to_owned())?;
    let rate: f64 = rate
        .trim()
        .parse()
        .map_err(|_| format!("{rate:?} is not a number"))?;
    Denomination::fiat(code.trim(), rate)
}

fn nwc_service(ctx: &Ctx) -> anyhow::Result<&NwcService> {
    ctx.nwc
        .as_deref()
        .context("NWC runs inside `moip ln run --nwc-relay <url>`; start the node that way")
}

/// Waits for persisted peers to reconnect, so one-shot payments find usable channels.
fn await_channels(node: &LightningNode) {
    if node.channels().iter().any(|c| c.is_ready) {
        let _ = node.wait_for(WAIT, "a usable channel", |n| {
            n.channels().iter().any(|c| c.is_usable).then_some(())
        });
    }
}

/// Carries out one command on a running node, writing what it prints to `out` (the terminal, or
/// the reply on the control socket).
fn command(ctx: &Ctx, command: LnCommand, out: &mut String) -> anyhow::Result<()> {
    let node = &ctx.node;
    match command {
        LnCommand::Init | LnCommand::Run => {
            bail!("`init` and `run` are not commands for a running node")
        }
        LnCommand::Info => {
            writeln!(out, "node id: {}", node.node_id())?;
            for peer in node.peer_addresses() {
                writeln!(out, "listening: {peer}")?;
            }
            writeln!(out, "best block: {}", node.best_block_height())?;
            print_balance(node, out)?;
            print_channels(node, out)?;
        }
        LnCommand::Address => writeln!(out, "{}", node.new_address()?)?,
        LnCommand::SendOnchain {
            address,
            amount_sats,
        } => {
            node.sync()?;
            writeln!(out, "{}", node.send_onchain(&address, amount_sats)?)?;
        }
        LnCommand::Open {
            peer,
            amount_sats,
            push_msat,
            private,
        } => {
            let peer: PeerAddress = peer.parse()?;
            node.sync()?;
            let id = node.open_channel(&peer, amount_sats, push_msat, !private)?;
            writeln!(
                out,
                "opening channel {id}; usable after the funding confirms"
            )?;
        }
        LnCommand::Channels => print_channels(node, out)?,
        LnCommand::Close {
            user_channel_id,
            force,
        } => {
            if force {
                node.force_close_channel(user_channel_id, None)?;
            } else {
                await_channels(node);
                node.close_channel(user_channel_id)?;
            }
            writeln!(out, "closing channel {user_channel_id}")?;
        }
        LnCommand::Invoice {
            amount_msat,
            description,
            expiry_secs,
        } => writeln!(
            out,
            "{}",
            node.create_invoice(amount_msat, &description, expiry_secs)?
                .bolt11
        )?,
        LnCommand::Pay {
            invoice,
            amount_msat,
            route,
        } => {
            await_channels(node);
            let outcome = node.pay(&invoice, amount_msat, route.into(), WAIT)?;
            writeln!(
                out,
                "paid: preimage {}, fee {} msat",
                outcome.preimage.map(|p| p.to_string()).unwrap_or_default(),
                outcome.fee_paid_msat.unwrap_or(0)
            )?;
        }
        LnCommand::Keysend {
            node_id,
            amount_msat,
            route,
        } => {
            await_channels(node);
            let id = node.send_keysend(parse_node_id(&node_id)?, amount_msat, route.into())?;
            let outcome = node.wait_payment(id, WAIT)?;
            writeln!(out, "sent: fee {} msat", outcome.fee_paid_msat.unwrap_or(0))?;
        }
        LnCommand::Offer {
            amount_msat,
            description,
        } => {
            await_channels(node);
            writeln!(out, "{}", node.create_offer(amount_msat, &description)?)?;
        }
        LnCommand::PayOffer {
            offer,
            amount_msat,
            route,
        } => {
            await_channels(node);
            let id = node.send_offer(&offer, amount_msat, None, route.into())?;
            let outcome = node.wait_payment(id, WAIT)?;
            writeln!(out, "paid: fee {} msat", outcome.fee_paid_msat.unwrap_or(0))?;
        }
        LnCommand::Balance => {
            node.sync()?;
            print_balance(node, out)?;
        }
        LnCommand::NwcConnect { name, terms } => {
            let service = nwc_service(ctx)?;
            let budget = terms.budget_sat.map(|sat| Budget {
                limit_msat: sat.saturating_mul(1000),
                renewal: terms.budget_renewal,
            });
            let permissions = terms.permissions()?;
            let uri = service.connect_app_with(&name, budget, terms.expires_at, permissions)?;
            writeln!(out, "{uri}")?;
            writeln!(out, "{}", moip_nwc::uri_qr(&uri)?)?;
            writeln!(
                out,
                "The URI is a bearer secret: whoever holds it spends within the budget."
            )?;
        }
        LnCommand::NwcList => {
            for c in nwc_service(ctx)?.connections() {
                writeln!(
                    out,
                    "{} {} may {}; {}{}",
                    c.client,
                    c.name,
                    c.permitted()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    match c.budget {
                        Some(b) => format!(
                            "budget {} sat {}, spent {} msat",
                            b.limit_msat / 1000,
                            b.renewal,
                            c.spent_msat
                        ),
                        None => "no budget".to_string(),
                    },
                    match (c.revoked, c.expires_at) {
                        (true, _) => ", revoked".to_owned(),
                        (false, Some(at)) => format!(", expires at {at}"),
                        (false, None) => String::new(),
                    }
                )?;
            }
        }
        LnCommand::NwcRevoke { client } => {
            let client = PublicKey::parse(client.trim())
                .map_err(|e| anyhow::anyhow!("not a Nostr public key: {e}"))?;
            nwc_service(ctx)?.revoke(&client)?;
            writeln!(out, "revoked {client}")?;
        }
        LnCommand::Beacon { limit_sat } => {
            let ms = ctx.moneysocket.as_ref().context(
                "Moneysocket runs inside `moip ln run --moneysocket-relay <url>`; start the node that way",
            )?;
            let limit = SpendingLimit {
                max_msat: limit_sat.map(|sat| sat.saturating_mul(1000)),
            };
            let beacon = {
                let _entered = ms.runtime.enter();
                moip::pairing::new_beacon(
                    &ms.relay,
                    moip::pairing::ProviderPath::Url,
                    &ms.account,
                    limit,
                )?
            };
            writeln!(out, "{beacon}")?;
            writeln!(out, "{}", moip_wallet::bip21::qr(&beacon.to_uppercase())?)?;
            writeln!(
                out,
                "The beacon is a bearer secret: whoever holds it uses the wallet within its limit."
            )?;
        }
        LnCommand::Payments => {
            for p in node.payments() {
                writeln!(
                    out,
                    "{} {:?} {} {:?} {} msat fee {} msat",
                    p.id,
                    p.kind,
                    if p.inbound { "in " } else { "out" },
                    p.state,
                    p.amount_msat.map(|a| a.to_string()).unwrap_or("?".into()),
                    p.fee_paid_msat.unwrap_or(0)
                )?;
            }
        }
    }
    Ok(())
}

fn print_balance(node: &LightningNode, out: &mut String) -> std::fmt::Result {
    let b = node.balance();
    writeln!(
        out,
        "on-chain: {} sat ({} spendable); lightning: {} sat ({} msat sendable, {} msat receivable)",
        b.onchain_sats,
        b.onchain_spendable_sats,
        b.lightning_sats,
        b.sendable_msat,
        b.receivable_msat
    )
}

fn print_channels(node: &LightningNode, out: &mut String) -> std::fmt::Result {
    for c in node.channels() {
        writeln!(
            out,
            "{} peer {} capacity {} sat, out {} msat, in {} msat, {}{}",
            c.user_channel_id,
            c.counterparty,
            c.capacity_sats,
            c.outbound_msat,
            c.inbound_msat,
            if c.is_usable {
                "usable"
            } else if c.is_ready {
                "ready (peer offline)"
            } else {
                "pending"
            },
            if c.is_announced { ", announced" } else { "" }
        )?;
    }
    Ok(())
}
