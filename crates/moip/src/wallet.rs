//! `moip wallet`: the wallet SDK from the terminal. Every command that moves money shows what
//! it will do and broadcasts only after the user says yes (or passed `--yes`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bitcoin::{Amount, FeeRate, Network, OutPoint, Txid};
use clap::{Args, Subcommand};
use moip_wallet::bip21;
use moip_wallet::collateral::collateral_key;
use moip_wallet::{
    combine_psbts, generate_mnemonic, psbt_from_base64, CollateralPolicy, Fee, KdfParams, Keys,
    MoipWallet, Prepared, SendRequest, Server, Trust, Unlock, WalletKind,
};

#[derive(Args)]
pub(crate) struct WalletArgs {
    /// Wallet directory [default: ~/.moip/wallet]
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// Wallet password (prefer the environment variable, or type it when asked)
    #[arg(
        long,
        global = true,
        env = "MOIP_WALLET_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// BIP39 passphrase, if the mnemonic has one (never stored)
    #[arg(
        long,
        global = true,
        env = "MOIP_WALLET_PASSPHRASE",
        hide_env_values = true,
        default_value = ""
    )]
    passphrase: String,
    #[command(subcommand)]
    command: WalletCommand,
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Creates a wallet: a new mnemonic, a restored one, watch-only, or a collateral multisig
    Create(CreateArgs),
    /// Prints this mnemonic's collateral key, to give to the community's collateral setup
    Key {
        #[arg(long, default_value = "regtest")]
        network: Network,
    },
    /// Shows the wallet's kind, server, and how far it trusts it
    Info,
    /// Points the wallet at another Electrum server
    Server {
        url: String,
        #[arg(long, default_value = "third-party")]
        trust: Trust,
        /// Accept a self-signed TLS certificate (proofs are still checked)
        #[arg(long)]
        accept_invalid_certs: bool,
    },
    /// Scans the wallet's addresses through the server, verifying its proofs
    Sync,
    /// Confirmed, pending and immature balances (after a sync)
    Balance,
    /// A fresh receiving address, as a BIP21 URI and a QR code
    Receive {
        /// Amount requested, in satoshis
        #[arg(long)]
        amount: Option<u64>,
        #[arg(long)]
        label: Option<String>,
        /// Skip the QR code
        #[arg(long)]
        no_qr: bool,
    },
    /// Transactions, newest first
    History,
    /// Unspent coins, for coin control
    Coins,
    /// Pays an address
    Send {
        #[command(flatten)]
        spend: SpendArgs,
        /// Broadcast without asking
        #[arg(long)]
        yes: bool,
    },
    /// Replaces an unconfirmed transaction with a higher fee (RBF)
    Bump {
        txid: Txid,
        /// New fee rate, sat/vB
        #[arg(long)]
        fee_rate: u64,
        #[arg(long)]
        yes: bool,
    },
    /// Speeds up an unconfirmed incoming transaction by spending it (CPFP)
    Cpfp {
        txid: Txid,
        /// Fee rate for parent and child together, sat/vB
        #[arg(long)]
        fee_rate: u64,
        #[arg(long)]
        yes: bool,
    },
    /// Collateral: the recovery key sweeps every coin past its delay
    Recover {
        #[arg(long)]
        to: String,
        #[arg(long, default_value_t = 1)]
        fee_rate: u64,
        #[arg(long)]
        yes: bool,
    },
    /// Partially signed transactions: create, sign, combine, finalize, broadcast
    #[command(subcommand)]
    Psbt(PsbtCommand),
}

#[derive(Args)]
struct CreateArgs {
    #[arg(long, default_value = "regtest")]
    network: Network,
    /// Electrum server, tcp://host:port or ssl://host:port
    #[arg(long, default_value = "tcp://127.0.0.1:50001")]
    server: String,
    /// How far the server is trusted: my-node, community or third-party
    #[arg(long, default_value = "my-node")]
    trust: Trust,
    /// bip86 (taproot) or bip84 (native segwit)
    #[arg(long, default_value = "bip86")]
    kind: String,
    /// Restore from a mnemonic (read from MOIP_WALLET_MNEMONIC, or typed when asked)
    #[arg(long)]
    restore: bool,
    /// Words in a new mnemonic
    #[arg(long, default_value_t = 12)]
    words: usize,
    /// Watch-only: a descriptor (or `wpkh(xpub…/0/*)`-style expression) to watch
    #[arg(long, conflicts_with_all = ["restore", "guardian"])]
    watch: Option<String>,
    /// Watch-only: the change descriptor
    #[arg(long, requires = "watch")]
    change: Option<String>,
    /// Collateral: a guardian's key (repeat for each), from `moip wallet key`
    #[arg(long)]
    guardian: Vec<String>,
    /// Collateral: how many guardians must sign
    #[arg(long, requires = "guardian")]
    threshold: Option<usize>,
    /// Collateral: the recovery key
    #[arg(long, requires = "guardian")]
    recovery: Option<String>,
    /// Collateral: blocks before the recovery key alone can spend a coin
    #[arg(long, requires = "guardian", default_value_t = 4320)]
    recovery_blocks: u16,
    /// Collateral: watch it without holding any of its keys
    #[arg(long, requires = "guardian")]
    no_key: bool,
}

#[derive(Args)]
struct SpendArgs {
    /// Recipient address
    #[arg(long)]
    to: String,
    /// Amount in satoshis (omit with --all)
    #[arg(long, required_unless_present = "all")]
    amount: Option<u64>,
    /// Send everything (or every selected coin)
    #[arg(long)]
    all: bool,
    /// Fee rate in sat/vB [default: the server's estimate for --target]
    #[arg(long)]
    fee_rate: Option<u64>,
    /// Blocks to confirm within, for the server's estimate
    #[arg(long, default_value_t = 6)]
    target: u16,
    /// Coin control: spend exactly these coins (txid:vout, repeatable)
    #[arg(long)]
    coin: Vec<OutPoint>,
}

#[derive(Subcommand)]
enum PsbtCommand {
    /// Builds an unsigned PSBT (signed too, if the wallet holds a key and --sign is given)
    Create {
        #[command(flatten)]
        spend: SpendArgs,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        sign: bool,
    },
    /// Adds this wallet's signatures
    Sign {
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Merges PSBTs of the same transaction signed by different people
    Combine {
        inputs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Finalizes a PSBT that has all its signatures
    Finalize {
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Shows what a PSBT pays
    Show {
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Broadcasts a finalized PSBT
    Broadcast {
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        yes: bool,
    },
}

pub(crate) fn run(args: WalletArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| crate::default_data_dir().join("wallet"));
    match args.command {
        WalletCommand::Create(ref create) => return self::create(&dir, &args, create),
        WalletCommand::Key { network } => {
            let mnemonic = read_mnemonic()?;
            let (public, _) = collateral_key(&mnemonic, &args.passphrase, network)?;
            println!("{public}");
            return Ok(());
        }
        WalletCommand::Psbt(PsbtCommand::Combine {
            ref inputs,
            ref out,
        }) => {
            let psbts = inputs
                .iter()
                .map(|p| read_psbt(p))
                .collect::<Result<Vec<_>, _>>()?;
            write_psbt(out, &combine_psbts(psbts)?)?;
            eprintln!("combined {} PSBTs into {}", inputs.len(), out.display());
            return Ok(());
        }
        _ => {}
    }
    let signs = matches!(
        args.command,
        WalletCommand::Send { .. }
            | WalletCommand::Bump { .. }
            | WalletCommand::Cpfp { .. }
            | WalletCommand::Recover { .. }
            | WalletCommand::Psbt(PsbtCommand::Sign { .. })
            | WalletCommand::Psbt(PsbtCommand::Create { sign: true, .. })
    );
    let password = if signs {
        Some(password(&args, false)?)
    } else {
        None
    };
    let unlock = password.as_deref().map(|password| Unlock {
        password,
        passphrase: &args.passphrase,
    });
    let mut wallet = MoipWallet::open(&dir, unlock)?;
    match args.command {
        WalletCommand::Create(_) | WalletCommand::Key { .. } => unreachable!("handled above"),
        WalletCommand::Info => {
            println!("kind:      {}", kind_name(wallet.kind()));
            println!("network:   {}", wallet.network());
            println!("server:    {}", wallet.server().url);
            println!("trust:     {}", wallet.server().trust.explain());
            println!("descriptor {}", wallet.descriptor());
        }
        WalletCommand::Server {
            url,
            trust,
            accept_invalid_certs,
        } => {
            let mut server = Server::new(url, trust);
            server.accept_invalid_certs = accept_invalid_certs;
            wallet.set_server(server)?;
            println!("server: {}", wallet.server());
        }
        WalletCommand::Sync => {
            let report = wallet.sync()?;
            println!(
                "synced to height {} through {}: {} transactions",
                report.tip,
                wallet.server(),
                report.transactions
            );
        }
        WalletCommand::Balance => {
            let b = wallet.balance();
            println!("confirmed          {}", b.confirmed);
            println!("pending (mine)     {}", b.trusted_pending);
            println!("pending (incoming) {}", b.untrusted_pending);
            println!("immature           {}", b.immature);
            println!("server             {}", wallet.server());
        }
        WalletCommand::Receive {
            amount,
            label,
            no_qr,
        } => {
            let info = wallet.receive()?;
            let uri = bip21::uri(
                &info.address,
                amount.map(Amount::from_sat),
                label.as_deref(),
                None,
            );
            println!("{}", info.address);
            println!("{uri}");
            if !no_qr {
                println!("{}", bip21::qr(&qr_form(&uri))?);
            }
        }
        WalletCommand::History => {
            for e in wallet.history() {
                let when = e
                    .height
                    .map(|h| format!("height {h}"))
                    .unwrap_or_else(|| "pending".into());
                println!(
                    "{} {:>14} in {:>14} out fee {:>10} {when}",
                    e.txid,
                    e.received.to_sat(),
                    e.sent.to_sat(),
                    e.fee.map(|f| f.to_sat().to_string()).unwrap_or("?".into())
                );
            }
        }
        WalletCommand::Coins => {
            for c in wallet.coins() {
                let height = c
                    .chain_position
                    .confirmation_height_upper_bound()
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "pending".into());
                println!("{} {:>14} sat {height}", c.outpoint, c.txout.value.to_sat());
            }
        }
        WalletCommand::Send { spend, yes } => {
            let prepared = wallet.prepare_send(&request(&spend))?;
            confirm_and_broadcast(&mut wallet, &prepared, yes)?;
        }
        WalletCommand::Bump {
            txid,
            fee_rate,
            yes,
        } => {
            let prepared = wallet.bump_fee(txid, rate(fee_rate)?)?;
            confirm_and_broadcast(&mut wallet, &prepared, yes)?;
        }
        WalletCommand::Cpfp {
            txid,
            fee_rate,
            yes,
        } => {
            let prepared = wallet.cpfp(txid, rate(fee_rate)?)?;
            confirm_and_broadcast(&mut wallet, &prepared, yes)?;
        }
        WalletCommand::Recover { to, fee_rate, yes } => {
            let prepared = wallet.prepare_recovery(&to, rate(fee_rate)?)?;
            confirm_and_broadcast(&mut wallet, &prepared, yes)?;
        }
        WalletCommand::Psbt(command) => psbt(&mut wallet, command)?,
    }
    Ok(())
}

fn psbt(wallet: &mut MoipWallet, command: PsbtCommand) -> anyhow::Result<()> {
    match command {
        PsbtCommand::Create { spend, out, .. } => {
            let prepared = wallet.prepare_send(&request(&spend))?;
            show(wallet, &prepared);
            write_psbt(&out, &prepared.psbt)?;
            eprintln!("wrote {}", out.display());
        }
        PsbtCommand::Sign { input, out } => {
            let mut psbt = read_psbt(&input)?;
            let prepared = wallet.inspect(psbt.clone())?;
            show(wallet, &prepared);
            let complete = wallet.sign_psbt(&mut psbt)?;
            write_psbt(&out, &psbt)?;
            eprintln!(
                "signed into {}{}",
                out.display(),
                if complete {
                    " (enough signatures to finalize)"
                } else {
                    " (more signatures needed)"
                }
            );
        }
        PsbtCommand::Finalize { input, out } => {
            let mut psbt = read_psbt(&input)?;
            if !wallet.finalize_psbt(&mut psbt)? {
                bail!("the PSBT does not have the signatures it needs yet");
            }
            write_psbt(&out, &psbt)?;
            eprintln!("finalized into {}", out.display());
        }
        PsbtCommand::Show { input } => {
            let prepared = wallet.inspect(read_psbt(&input)?)?;
            show(wallet, &prepared);
        }
        PsbtCommand::Broadcast { input, yes } => {
            let prepared = wallet.inspect(read_psbt(&input)?)?;
            confirm_and_broadcast(wallet, &prepared, yes)?;
        }
        PsbtCommand::Combine { .. } => unreachable!("handled without a wallet"),
    }
    Ok(())
}

fn create(dir: &Path, args: &WalletArgs, create: &CreateArgs) -> anyhow::Result<()> {
    let server = Server::new(create.server.clone(), create.trust);
    let (kind, keys) = if let Some(watch) = &create.watch {
        (
            WalletKind::WatchOnly,
            Keys::WatchOnly {
                external: watch.clone(),
                internal: create.change.clone(),
            },
        )
    } else {
        let kind = if create.guardian.is_empty() {
            match create.kind.as_str() {
                "bip86" => WalletKind::Bip86,
                "bip84" => WalletKind::Bip84,
                other => bail!("unknown wallet kind {other:?} (bip86 or bip84)"),
            }
        } else {
            WalletKind::Collateral {
                policy: CollateralPolicy {
                    threshold: create.threshold.context("--threshold is needed")?,
                    guardians: create.guardian.clone(),
                    recovery: create.recovery.clone().context("--recovery is needed")?,
                    recovery_blocks: create.recovery_blocks,
                },
            }
        };
        if create.no_key {
            let WalletKind::Collateral { policy } = &kind else {
                bail!("--no-key is for collateral wallets");
            };
            (
                kind.clone(),
                Keys::WatchOnly {
                    external: policy.descriptor()?,
                    internal: None,
                },
            )
        } else {
            let mnemonic = if create.restore {
                read_mnemonic()?
            } else {
                let m = generate_mnemonic(create.words)?;
                // Shown once, on the terminal only: the user must write it down.
                eprintln!("Write down these words; they are the only backup of this wallet:\n");
                println!("{m}");
                m
            };
            (
                kind,
                Keys::Seed {
                    mnemonic,
                    passphrase: args.passphrase.clone(),
                    password: password(args, true)?,
                },
            )
        }
    };
    let wallet = MoipWallet::create(dir, create.network, kind, keys, server, KdfParams::DEFAULT)?;
    eprintln!(
        "created a {} wallet in {} using {}",
        kind_name(wallet.kind()),
        dir.display(),
        wallet.server()
    );
    Ok(())
}

fn kind_name(kind: &WalletKind) -> String {
    match kind {
        WalletKind::Bip86 => "BIP86 taproot".into(),
        WalletKind::Bip84 => "BIP84 segwit".into(),
        WalletKind::WatchOnly => "watch-only".into(),
        WalletKind::Collateral { policy } => format!(
            "collateral {}-of-{} (recovery after {} blocks)",
            policy.threshold,
            policy.guardians.len(),
            policy.recovery_blocks
        ),
    }
}

fn request(spend: &SpendArgs) -> SendRequest {
    let fee = match spend.fee_rate {
        Some(r) => Fee::Rate(FeeRate::from_sat_per_vb(r).unwrap_or(FeeRate::MAX)),
        None => Fee::Target(spend.target),
    };
    let (recipients, drain_to) = if spend.all {
        (vec![], Some(spend.to.clone()))
    } else {
        (
            vec![(
                spend.to.clone(),
                Amount::from_sat(spend.amount.unwrap_or_default()),
            )],
            None,
        )
    };
    SendRequest {
        recipients,
        drain_to,
        fee,
        coins: spend.coin.clone(),
        data: None,
    }
}

fn rate(sat_per_vb: u64) -> anyhow::Result<FeeRate> {
    FeeRate::from_sat_per_vb(sat_per_vb).context("fee rate too large")
}

fn show(wallet: &MoipWallet, prepared: &Prepared) {
    eprintln!("This transaction pays:");
    for (script, amount) in &prepared.payments {
        let to = bitcoin::Address::from_script(script, wallet.network())
            .map(|a| a.to_string())
            .unwrap_or_else(|_| script.to_hex_string());
        eprintln!("  {amount} to {to}");
    }
    eprintln!(
        "  fee {} ({:.1} sat/vB){}",
        prepared.fee,
        prepared.fee_rate.to_sat_per_kwu() as f64 * 4.0 / 1000.0,
        if prepared.finalized {
            ", fully signed"
        } else {
            ", not fully signed"
        }
    );
}

/// Shows the transaction and broadcasts it only on an explicit yes.
fn confirm_and_broadcast(
    wallet: &mut MoipWallet,
    prepared: &Prepared,
    yes: bool,
) -> anyhow::Result<()> {
    show(wallet, prepared);
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("not broadcast: confirm on a terminal, or pass --yes");
        }
        eprint!("Broadcast it through {}? [y/N] ", wallet.server().url);
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not broadcast");
        }
    }
    let txid = wallet.broadcast(&prepared.psbt)?;
    println!("{txid}");
    Ok(())
}

fn password(args: &WalletArgs, new: bool) -> anyhow::Result<String> {
    if let Some(p) = &args.password {
        return Ok(p.clone());
    }
    let first = rpassword::prompt_password("Wallet password: ")?;
    if new && rpassword::prompt_password("Again: ")? != first {
        bail!("the passwords differ");
    }
    Ok(first)
}

fn read_mnemonic() -> anyhow::Result<bip39::Mnemonic> {
    let words = match std::env::var("MOIP_WALLET_MNEMONIC") {
        Ok(words) => words,
        Err(_) => rpassword::prompt_password("Mnemonic words: ")?,
    };
    bip39::Mnemonic::parse_normalized(words.trim())
        .map_err(|e| moip_wallet::WalletError::BadMnemonic(e.to_string()).into())
}

fn read_psbt(path: &Path) -> anyhow::Result<bitcoin::psbt::Psbt> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(psbt_from_base64(&text)?)
}

fn write_psbt(path: &Path, psbt: &bitcoin::psbt::Psbt) -> anyhow::Result<()> {
    std::fs::write(path, format!("{psbt}\n")).with_context(|| format!("writing {}", path.display()))
}

/// BIP21 URIs scan more compactly in a QR code's alphanumeric mode when the scheme and
/// address (case-insensitive) are upper-cased; the query keeps its case.
fn qr_form(uri: &str) -> String {
    match uri.split_once('?') {
        Some((head, query)) => format!("{}?{query}", head.to_uppercase()),
        None => uri.to_uppercase(),
    }
}
