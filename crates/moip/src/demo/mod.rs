//! `moip demo`: a scripted community on the embedded stack, end to end, in well under a minute.
//!
//! An employer, a worker, three attesters (one a physical verifier, certified by the two
//! founders) run the Work protocol's Flow 2 (a Lightning deposit becomes collateral, tokens are
//! minted, a task is posted with its reward escrowed) and Flow 1 (claim, proof, attestations,
//! the reward released and redeemed for bitcoin over Lightning). Then the community proves its
//! supply: its ledger's root is committed on chain and checked against the guardians'
//! collateral by [`moip_assets::reserves::verify_supply`], from the chain alone.
//!
//! Everything is real and in this process: the regtest chain validated by libbitcoinkernel,
//! moip's Electrum server, three ldk-nodes (community, employer, worker) syncing through it,
//! the token ledger in SQLite, an in-process Nostr relay and the Work service. One line per
//! step goes to stdout, then a summary whose figures the CI test checks. Keys are made for the
//! run and held in memory; none is printed.
//!
//! - [`stack`]: the chain, the Electrum server, the Lightning nodes and their channels.
//! - [`community`]: the people, the ledger, the Work service, and the two flows.
//! - [`reserve`]: the collateral on chain, the supply commitment and its check.

mod community;
mod reserve;
mod stack;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use tokio::runtime::Runtime;

use community::{Community, Figures, COMMUNITY, SYMBOL};
use reserve::{Proof, Reserve};
use stack::{Stack, CHANNEL_SATS, EMPLOYER_PUSH_SATS};

/// How long any one step may wait on the chain, a node, the relay or the service.
const WAIT: Duration = Duration::from_secs(60);

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Where the chain, the nodes, the ledger and the logs go; kept afterwards. It must be new
    /// or empty [default: a temporary directory, removed at the end]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the temporary directory (its path is printed), to look at the ledger, the Work
    /// log and the nodes' logs afterwards
    #[arg(long)]
    keep: bool,
}

/// Prints the steps, each with the time since the start.
struct Narrator {
    started: Instant,
}

impl Narrator {
    fn part(&self, title: &str) {
        println!("{title}");
    }

    fn step(&self, what: impl Display) {
        println!("  [{:>5.1} s] {what}", self.started.elapsed().as_secs_f64());
    }
}

/// Polls `check` (at most every 50 ms) until it returns `Some`, for at most `timeout`.
fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    let say = Narrator {
        started: Instant::now(),
    };
    let (dir, temporary) = match &args.data_dir {
        Some(dir) => (fresh_dir(dir)?, None),
        None => {
            let temp = tempfile::Builder::new().prefix("moip-demo-").tempdir()?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    let kept = temporary.is_none() || args.keep;
    println!(
        "moip demo: a community on the embedded regtest chain, data in {}{}",
        dir.display(),
        if kept { "" } else { " (removed at the end)" }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = demo(&rt, &dir, &say);
    if result.is_ok() {
        println!(
            "moip demo: done in {:.1} s",
            say.started.elapsed().as_secs_f64()
        );
    }
    match (temporary, kept) {
        (Some(temp), true) => println!("moip demo: kept {}", temp.keep().display()),
        (Some(_), false) => {} // removed on drop
        (None, _) => println!("moip demo: kept {}", dir.display()),
    }
    if result.is_err() && !kept {
        eprintln!("moip demo: run it with --keep to look at the nodes' logs");
    }
    result
}

/// `dir`, created; refused when it holds anything (a second run would meet the first one's
/// chain and ledger).
fn fresh_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty; give moip demo a new directory",
            dir.display()
        );
    }
    Ok(dir.to_owned())
}

/// The whole script; every part stops what it started, also when a later step fails.
fn demo(rt: &Runtime, dir: &Path, say: &Narrator) -> anyhow::Result<()> {
    say.part("the stack");
    let stack = Stack::start(rt, dir)?;
    say.step(format!(
        "embedded regtest chain and Electrum server on {}; Lightning nodes of the community, \
         the employer and the worker started",
        stack.electrum_url
    ));
    let result = Reserve::create(&dir.join("wallets"), &stack.electrum_url).and_then(|reserve| {
        let community = Community::start(rt, dir)?;
        let result = script(rt, &stack, &community, reserve, dir, say);
        community.stop(rt);
        result
    });
    let stopped = stack.stop(rt);
    let summary = result?;
    stopped?;
    summary.print();
    Ok(())
}

/// The script, once the stack and the community run.
fn script(
    rt: &Runtime,
    stack: &Stack,
    community: &Community,
    mut reserve: Reserve,
    dir: &Path,
    say: &Narrator,
) -> anyhow::Result<Summary> {
    // Coinbases for the community node (its channels) and the operations wallet (the
    // commitment's fee), matured by 100 more blocks.
    stack.mine_to(1, &stack.community.new_address()?.script_pubkey())?;
    stack.mine_to(1, &reserve.operations_address()?.script_pubkey())?;
    let height = stack.mine(100)?;
    stack.sync_nodes()?;
    let funded = stack.wait_community_funded()?;
    reserve.wait_operations_funded()?;
    say.step(format!(
        "mined to height {height}: coinbases matured for the community node ({funded} sat) \
         and the community's operations wallet"
    ));
    stack.open_channels()?;
    say.step(format!(
        "channels of {CHANNEL_SATS} sat from the community to the employer ({EMPLOYER_PUSH_SATS} \
         sat on the employer's side) and to the worker, confirmed and usable"
    ));
    say.step(format!(
        "Nostr relay on {} and the Work service: community {COMMUNITY:?}, token {SYMBOL}, two \
         founders",
        community.relay_url()
    ));

    let figures = community.run_flows(rt, stack, say)?;

    say.part("the supply proof");
    let proof = reserve.prove(stack, community.ledger(), &dir.join("verify-supply"), say)?;
    Ok(Summary { figures, proof })
}

/// The figures the run ends with (the CI test reads these lines).
struct Summary {
    figures: Figures,
    proof: Proof,
}

impl Summary {
    fn print(&self) {
        let f = &self.figures;
        println!("summary");
        println!("  sats deposited:  {} (over Lightning)", f.deposited);
        println!("  tokens minted:   {} {SYMBOL} (1:1)", f.minted);
        println!(
            "  attestations:    {} (quorum of 3, one a physical verifier)",
            f.attestations
        );
        println!("  reward:          {} {SYMBOL}", f.reward);
        println!("  fee:             {} {SYMBOL}", f.fee);
        println!(
            "  sats redeemed:   {} (over Lightning, the reward less the fee)",
            f.redeemed
        );
        let p = &self.proof;
        println!(
            "  supply:          {} {SYMBOL} against {} sat of collateral on chain",
            p.supply, p.collateral
        );
        println!(
            "  supply proof:    verified (commitment {} at height {})",
            p.txid, p.height
        );
    }
}
