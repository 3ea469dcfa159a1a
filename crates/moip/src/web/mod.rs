//! The web dashboard: server-rendered pages for each role — the community's figures and
//! charts, the task board, a member's wallet, identities with their trust, the node's status,
//! and QR codes to pair wallets — with one small script (`app.js`) for NIP-07 signers.
//!
//! Every action is signed by the member: a local user's key is held by the node while the
//! session lasts (sealed under that user's password at rest); a NIP-07 session signs in the
//! browser and posts to the API. The pages read what the API reads ([`crate::views`]) and act
//! through the same functions ([`crate::api`]), so the two never disagree.

pub mod charts;
pub mod html;
pub mod session;
pub mod throttle;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use moip_assets::ledger::AccountId;
use moip_work::events::encode;
use moip_work::receipt::Verdict;
use nostr_sdk::{Event, JsonUtil, Kind};

use crate::actions::{self, Prepared, RedeemRequest};
use crate::api::{self, Failure};
use crate::hub::Hub;
use crate::pairing::qr_svg;
use crate::views::{self, now};
use html::{action_form, esc, input, key_link, num, page, when};
use session::{cross_site, token_in, Session, Signer, COOKIE, SESSION_SECS};
use throttle::Throttled;

/// The kind a NIP-07 signer signs to log in (NIP-42's authentication kind).
pub const KIND_LOGIN: u16 = 22_242;

/// Longest local user name.
const MAX_NAME: usize = 32;

/// Shortest local user password.
const MIN_PASSWORD: usize = 8;

type Fields = HashMap<String, String>;

/// The session of the request, with its token.
pub(crate) fn session(hub: &Hub, headers: &HeaderMap) -> Option<(String, Session)> {
    let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
    let token = token_in(cookie)?;
    hub.sessions
        .get(token, now())
        .map(|s| (token.to_owned(), s))
}

/// A page for the request's session (its flash message shown once).
fn render(hub: &Hub, headers: &HeaderMap, title: &str, body: &str) -> Html<String> {
    render_with(hub, headers, title, body, None)
}

fn render_with(
    hub: &Hub,
    headers: &HeaderMap,
    title: &str,
    body: &str,
    flash: Option<(bool, String)>,
) -> Html<String> {
    let s = session(hub, headers);
    let flash = flash.or_else(|| s.as_ref().and_then(|(t, _)| hub.sessions.take_flash(t)));
    let community = hub.work.with_community(|c| c.id().to_owned());
    Html(page(
        title,
        &community,
        s.as_ref().map(|(_, s)| s),
        flash,
        body,
    ))
}

/// Who the request's session is, for what it may see.
pub(crate) fn viewer(hub: &Hub, headers: &HeaderMap) -> views::Viewer {
    match session(hub, headers) {
        Some((_, s)) if s.operator => views::Viewer::Operator,
        Some((
            _,
            Session {
                account: Some(account),
                ..
            },
        )) => views::Viewer::Member(account),
        _ => views::Viewer::Anyone,
    }
}

/// A balance as a page shows it: hidden from who may not see it.
fn balance_text(balance: Option<u64>) -> String {
    balance.map_or_else(|| "<span title=\"not published\">—</span>".into(), num)
}

fn csrf_of(hub: &Hub, headers: &HeaderMap) -> String {
    session(hub, headers).map_or_else(String::new, |(_, s)| s.csrf)
}

/// What a login posted from another site's page is told (see [`session::cross_site`]).
pub const CROSS_SITE_LOGIN: &str =
    "Refused: a login must be sent from this node's own login page, not from another site.";

/// A login not tried now: 429 with the seconds to wait.
fn throttled(hub: &Hub, headers: &HeaderMap, retry_after: u64, text: &str) -> Response {
    let mut response = refused(hub, headers, StatusCode::TOO_MANY_REQUESTS, text);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after.into());
    response
}

fn refused(hub: &Hub, headers: &HeaderMap, status: StatusCode, text: &str) -> Response {
    (
        status,
        render_with(hub, headers, "Refused", "", Some((false, text.to_owned()))),
    )
        .into_response()
}

async fn overview(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Html<String> {
    let c = views::community(&hub);
    let p = views::pool(&hub);
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{name} <small>({symbol})</small></h1><div class=\"cards\">\
         <div class=\"card\">Collateral<b id=\"collateral\">{} sat</b></div>\
         <div class=\"card\">Token supply<b id=\"supply\">{}</b></div>\
         <div class=\"card\">Free collateral<b>{} sat</b></div>\
         <div class=\"card\">Tasks open / all<b>{} / {}</b></div>\
         <div class=\"card\">Log entries<b>{}</b></div></div>",
        num(c.collateral_sats),
        num(c.supply),
        num(c.collateral_sats.saturating_sub(c.supply)),
        c.open_tasks,
        c.tasks,
        c.last_seq,
        name = esc(&c.name),
        symbol = esc(&c.symbol),
    );
    let chart = match hub.history.points(&hub.ledger) {
        Ok(points) => charts::collateral_chart(&points, now()),
        Err(e) => format!("<p>The history cannot be read: {}</p>", esc(&e.to_string())),
    };
    let _ = write!(
        body,
        "<section><h2>Collateral against supply</h2>{chart}</section>\
         <section><h2>Supply commitment</h2><p>Supply root <span class=\"mono\" id=\"supply-root\">{}</span> \
         — a Merkle-sum tree over every balance and escrow; its sum is the supply. Each member can \
         check their balance in it: <a href=\"/api/proof/&lt;your key&gt;\">/api/proof/…</a>.</p>",
        esc(&c.supply_root)
    );
    let supply = views::supply(&hub);
    match supply.commitments.last() {
        None => body.push_str(
            "<p id=\"commitment\">Not committed on chain yet: the node commits the root once an epoch, \
             when its operations wallet can pay the fee.</p>",
        ),
        Some(last) => {
            let state = match (last.confirmed_at, last.covered) {
                (None, _) => "waiting for a confirmation".to_owned(),
                (Some(h), None) => format!("confirmed at height {h}; not checked (no collateral descriptor set)"),
                (Some(h), Some(true)) => format!(
                    "confirmed at height {h}; checked from the chain: covered by {} sat of collateral",
                    num(last.collateral_sats.unwrap_or(0))
                ),
                (Some(h), Some(false)) => format!(
                    "confirmed at height {h}; checked from the chain: NOT covered ({} sat of collateral)",
                    num(last.collateral_sats.unwrap_or(0))
                ),
            };
            let _ = write!(
                body,
                "<p id=\"commitment\">Last on-chain commitment: <span class=\"mono\">{}</span>, {} tokens, {}. \
                 <a href=\"/api/supply\">Its proof</a></p>",
                esc(&last.txid),
                num(last.sum),
                esc(&state)
            );
            if let Some(command) = &supply.verify_with {
                let _ = write!(
                    body,
                    "<p>Check it yourself: <code class=\"mono\">{}</code></p>",
                    esc(command)
                );
            }
        }
    }
    body.push_str("</section>");
    let _ = write!(
        body,
        "<section><h2>Redemption pool</h2><table>\
         <tr><th>Fee</th><td>{:.2} %</td></tr>\
         <tr><th>Per epoch (all members)</th><td>{} tokens per {} h, {} out so far</td></tr>\
         <tr><th>Per member at full trust</th><td>{} tokens per epoch (scaled by trust, at least 10 %)</td></tr>\
         <tr><th>Queue</th><td id=\"queue\">{} waiting, {} tokens</td></tr>\
         <tr><th>Circuit breaker</th><td>{}</td></tr></table></section>",
        f64::from(p.fee_ppm) / 10_000.0,
        num(p.epoch_cap),
        p.epoch_secs / 3_600,
        num(p.epoch_out),
        num(p.account_cap),
        p.queued,
        num(p.queued_tokens),
        if p.breaker_tripped {
            "tripped: payouts wait"
        } else {
            "closed: payouts flow"
        }
    );
    render(&hub, &headers, "Overview", &body)
}

async fn tasks_page(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Html<String> {
    let at = now();
    let mut body = String::from(
        "<h1>Tasks</h1><table id=\"tasks\"><tr><th>Task</th><th>Category</th>\
        <th>Reward</th><th>State</th><th>Employer</th><th>Worker</th><th>Deadline</th></tr>",
    );
    for t in views::tasks(&hub, api::MAX_LISTED) {
        let _ = write!(
            body,
            "<tr><td><a href=\"/tasks/{id}\">{}</a></td><td>{}</td><td>{}</td>\
             <td><span class=\"state\">{}</span></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.id),
            esc(&t.category),
            num(t.reward),
            esc(&t.state),
            key_link(&t.employer),
            t.worker.as_deref().map(key_link).unwrap_or_default(),
            when(t.deadline, at),
            id = urlencode(&t.id),
        );
    }
    body.push_str("</table>");
    let csrf = csrf_of(&hub, &headers);
    if csrf.is_empty() {
        body.push_str("<p><a href=\"/login\">Log in</a> to post or take a task.</p>");
    } else {
        let inner = [
            input("task", "Task id", "", "paint-the-fence"),
            input("category", "Category", "", "repair"),
            input("geohash", "Where (geohash)", "", "u33dc0"),
            input(
                "evidence",
                "Evidence needed (comma-separated)",
                "",
                "photo-before, photo-after",
            ),
            input("reward", "Reward (tokens)", "", "50000"),
            input("hours", "Deadline (hours from now)", "72", ""),
        ]
        .concat();
        let _ = write!(
            body,
            "<section><h2>Post a task</h2><p>The reward is locked from your balance until the work is attested.</p>{}</section>",
            action_form(&csrf, "post", "/tasks", &inner, "Post the task")
        );
    }
    render(&hub, &headers, "Tasks", &body)
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn task_page(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(t) = views::task(&hub, &id) else {
        return refused(
            &hub,
            &headers,
            StatusCode::NOT_FOUND,
            &format!("There is no task {id:?}."),
        );
    };
    let at = now();
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Task {}</h1><table><tr><th>State</th><td><span class=\"state\" id=\"task-state\">{}</span></td></tr>\
         <tr><th>Category</th><td>{}</td></tr><tr><th>Where</th><td>{}</td></tr>\
         <tr><th>Reward</th><td>{} tokens (escrowed)</td></tr><tr><th>Employer</th><td>{}</td></tr>\
         <tr><th>Worker</th><td>{}</td></tr><tr><th>Evidence needed</th><td>{}</td></tr>\
         <tr><th>Deadline</th><td>{}</td></tr><tr><th>Attesters</th><td>{}</td></tr>",
        esc(&t.id),
        esc(&t.state),
        esc(&t.category),
        esc(&t.geohash),
        num(t.reward),
        key_link(&t.employer),
        t.worker.as_deref().map(key_link).unwrap_or_else(|| "—".into()),
        esc(&t.evidence_required.join(", ")),
        when(t.deadline, at),
        t.attesters.iter().map(|a| key_link(a)).collect::<Vec<_>>().join(" "),
    );
    if let Some(until) = t.challenge_until {
        let _ = write!(
            body,
            "<tr><th>Challenge window</th><td>ends {}</td></tr>",
            when(until, at)
        );
    }
    body.push_str("</table>");
    let csrf = csrf_of(&hub, &headers);
    if csrf.is_empty() {
        body.push_str("<p><a href=\"/login\">Log in</a> to act on this task.</p>");
        return render(&hub, &headers, &t.id, &body).into_response();
    }
    let back = format!("/tasks/{}", urlencode(&t.id));
    let task = format!(
        "<input type=\"hidden\" name=\"task\" value=\"{}\">",
        esc(&t.id)
    );
    body.push_str("<section><h2>Act</h2>");
    match t.state.as_str() {
        "open" => {
            body.push_str(&action_form(&csrf, "claim", &back, &task, "Claim it"));
            body.push_str(&action_form(
                &csrf,
                "withdraw",
                &back,
                &task,
                "Withdraw it (employer)",
            ));
        }
        "claimed" => {
            let mut inner = task.clone();
            for name in &t.evidence_required {
                inner.push_str(&input(
                    &format!("evidence.{name}"),
                    name,
                    "",
                    "a link or description (only its hash is published)",
                ));
            }
            inner.push_str(&input("geohash", "Where (geohash)", &t.geohash, ""));
            body.push_str(&action_form(
                &csrf,
                "submit",
                &back,
                &inner,
                "Submit the proof",
            ));
            body.push_str(&action_form(&csrf, "withdraw", &back, &task, "Give it up"));
        }
        "submitted" => {
            let inner = format!(
                "{task}<input type=\"hidden\" name=\"worker\" value=\"{}\">",
                esc(t.worker.as_deref().unwrap_or_default())
            );
            body.push_str(&action_form(
                &csrf,
                "attest",
                &back,
                &inner,
                "Attest the work",
            ));
        }
        "attested" => {
            body.push_str(&action_form(
                &csrf,
                "dispute",
                &back,
                &task,
                "Dispute the attestations",
            ));
        }
        "disputed" => {
            for (side, label) in [
                ("worker", "Vote: pay the worker"),
                ("employer", "Vote: refund the employer"),
            ] {
                let inner = format!("{task}<input type=\"hidden\" name=\"side\" value=\"{side}\">");
                body.push_str(&action_form(&csrf, "vote", &back, &inner, label));
            }
        }
        _ => body.push_str("<p>Nothing more to do: this task is settled.</p>"),
    }
    body.push_str("</section>");
    render(&hub, &headers, &t.id, &body).into_response()
}

async fn wallet(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Html<String> {
    let Some((_, s)) = session(&hub, &headers) else {
        return render(
            &hub,
            &headers,
            "Wallet",
            "<h1>Wallet</h1><p><a href=\"/login\">Log in</a> to see your tokens.</p>",
        );
    };
    let Some(account) = s.account else {
        return render(
            &hub,
            &headers,
            "Wallet",
            "<h1>Wallet</h1><p>The operator has no tokens; log in as a member.</p>",
        );
    };
    let me = views::identity(&hub, &account, views::Viewer::Member(account));
    let pool = views::pool(&hub);
    let cap = (pool.account_cap as f64 * me.score.max(0.1)) as u64;
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Wallet</h1><div class=\"cards\"><div class=\"card\">Tokens<b id=\"balance\">{}</b></div>\
         <div class=\"card\">Trust<b>{:.3}</b></div><div class=\"card\">Redeemable per epoch<b>{}</b></div></div>\
         <p>Your key: {}</p>",
        balance_text(me.balance),
        me.score,
        num(cap),
        key_link(&me.pubkey)
    );
    let _ = write!(
        body,
        "<section><h2>Deposit bitcoin</h2><p>Pay the invoice over Lightning; the sats become the community's \
         collateral and you get tokens one for one.</p>\
         <form method=\"post\" action=\"/deposit\" class=\"action\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{}\
         <button type=\"submit\">Make an invoice</button></form></section>",
        esc(&s.csrf),
        input("sats", "Sats", "", "90000")
    );
    let inner = [
        input("amount", "Tokens", "", "50000"),
        input(
            "invoice",
            "Your Lightning invoice (for the amount less the fee)",
            "",
            "lnbc…",
        ),
    ]
    .concat();
    let _ = write!(
        body,
        "<section><h2>Redeem to bitcoin</h2><p>Tokens are redeemed one for one less a {:.2} % fee, paid to \
         your invoice; when the pool's limits hold, the request waits in line and is never refused.</p>{}</section>",
        f64::from(pool.fee_ppm) / 10_000.0,
        action_form(&s.csrf, "redeem", "/wallet", &inner, "Redeem")
    );
    render(&hub, &headers, "Wallet", &body)
}

async fn deposit(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let Some((_, s)) = checked_session(&hub, &headers, &fields) else {
        return refused(&hub, &headers, StatusCode::UNAUTHORIZED, "Log in first.");
    };
    let Some(account) = s.account else {
        return refused(&hub, &headers, StatusCode::FORBIDDEN, "Log in as a member.");
    };
    let sats = match actions::amount(&fields, "sats") {
        Ok(sats) => sats,
        Err(e) => return refused(&hub, &headers, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match api::deposit(&hub, crate::deposits::Depositor::Member, account, sats).await {
        Ok(view) => {
            let qr =
                qr_svg(&format!("lightning:{}", view.invoice.to_uppercase())).unwrap_or_default();
            let body = format!(
                "<h1>Deposit {} sat</h1><p>Pay this invoice from any Lightning wallet. Your tokens are \
                 minted as soon as the payment arrives.</p><div class=\"qr\">{qr}</div>\
                 <p class=\"mono\" id=\"invoice\">{}</p><p><a href=\"/wallet\">Back to the wallet</a></p>",
                num(view.sats),
                esc(&view.invoice)
            );
            render(&hub, &headers, "Deposit", &body).into_response()
        }
        Err(Failure { status, message }) => refused(&hub, &headers, status, &message),
    }
}

/// The session, if the form carries its CSRF token.
fn checked_session(hub: &Hub, headers: &HeaderMap, fields: &Fields) -> Option<(String, Session)> {
    let (token, s) = session(hub, headers)?;
    let given = fields.get("csrf").map(String::as_str).unwrap_or_default();
    api::same(given.as_bytes(), s.csrf.as_bytes()).then_some((token, s))
}

/// Where to go after a form: a path on this site only.
fn back_of(fields: &Fields) -> String {
    match fields.get("back") {
        Some(b) if b.starts_with('/') && !b.starts_with("//") && !b.contains('\\') => b.clone(),
        _ => "/".into(),
    }
}

async fn act(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let Some((token, s)) = checked_session(&hub, &headers, &fields) else {
        return refused(
            &hub,
            &headers,
            StatusCode::UNAUTHORIZED,
            "Log in first (or reload the page: the form was stale).",
        );
    };
    let Signer::Local { keys, .. } = &s.signer else {
        return refused(
            &hub,
            &headers,
            StatusCode::FORBIDDEN,
            "This session signs in the browser (NIP-07): enable its script, or log in with a key held by this node.",
        );
    };
    let back = back_of(&fields);
    let (ok, text) = match perform(&hub, keys, &fields).await {
        Ok(text) => (true, text),
        Err(text) => (false, text),
    };
    hub.sessions.flash(&token, ok, text);
    Redirect::to(&back).into_response()
}

/// Signs and carries out a form's action as `keys`; the outcome, for a person.
async fn perform(hub: &Hub, keys: &nostr_sdk::Keys, fields: &Fields) -> Result<String, String> {
    let at = now();
    let (prepared, community) = hub
        .work
        .with_community(|c| (actions::prepare(fields, c, at), c.id().to_owned()));
    match prepared.map_err(|e| e.to_string())? {
        Prepared::Work(message) => {
            let event = encode(keys, &community, &message, at).map_err(|e| e.to_string())?;
            let receipt = api::submit_event(hub, &event)
                .await
                .map_err(|f| f.message)?;
            match receipt.verdict {
                Verdict::Rejected { reason } => Err(format!("Refused: {reason}")),
                Verdict::QuorumReached => Ok(format!(
                    "Done (log entry {}): the quorum is reached; the reward is paid when the challenge window ends.",
                    receipt.seq
                )),
                _ => Ok(format!("Done (log entry {}).", receipt.seq)),
            }
        }
        Prepared::Redeem { amount, invoice } => {
            let event = actions::redeem_builder(&community, &RedeemRequest { amount, invoice }, at)
                .sign_with_keys(keys)
                .map_err(|e| e.to_string())?;
            let view = api::redeem_event(hub, &event)
                .await
                .map_err(|f| f.message)?;
            Ok(match view.status.as_str() {
                "paid" => format!(
                    "Redeemed: {} sat paid to your invoice (fee {} tokens).",
                    num(view.sats_out.unwrap_or(0)),
                    num(view.fee.unwrap_or(0))
                ),
                "queued" => format!(
                    "Your redemption is queued (place {}): it is paid as soon as the pool's limits allow, in seconds unless they hold it.",
                    view.position.unwrap_or(0) + 1
                ),
                "cancelled" => format!(
                    "The payment failed and your tokens are back: {}",
                    view.reason.unwrap_or_default()
                ),
                _ => "The payment is on its way.".into(),
            })
        }
    }
}

async fn identities_page(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Html<String> {
    let mut body = String::from(
        "<h1>Identities</h1><table id=\"identities\"><tr><th>Key</th><th>Trust</th><th>Rank</th>\
         <th>Tokens</th><th>Physical verifier</th></tr>",
    );
    for i in views::identities(&hub, api::MAX_LISTED, viewer(&hub, &headers)) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            key_link(&i.pubkey),
            i.score,
            i.rank,
            balance_text(i.balance),
            if i.verifier { "yes" } else { "" }
        );
    }
    body.push_str("</table>");
    let csrf = csrf_of(&hub, &headers);
    if !csrf.is_empty() {
        let inner = input("subject", "Their key (hex or npub)", "", "npub1…");
        let _ = write!(
            body,
            "<section><h2>Vouch or certify</h2><p>Physical verifiers vouch for people they met, and certify new \
             verifiers (two certifications make one).</p>{}{}</section>",
            action_form(&csrf, "vouch", "/identities", &inner, "Vouch"),
            action_form(&csrf, "certify", "/identities", &inner, "Certify as verifier")
        );
    }
    render(&hub, &headers, "Identities", &body)
}

async fn identity_page(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(pubkey): Path<String>,
) -> Response {
    let Some(account) = actions::parse_key(&pubkey) else {
        return refused(
            &hub,
            &headers,
            StatusCode::BAD_REQUEST,
            "A key is 64 hex digits or npub1….",
        );
    };
    let me = views::identity(&hub, &account, viewer(&hub, &headers));
    let around = views::neighbours(&hub, &account, 24);
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Identity</h1><p class=\"mono\">{}</p><div class=\"cards\">\
         <div class=\"card\">Trust<b id=\"trust\">{:.3}</b></div><div class=\"card\">NIP-85 rank<b>{}</b></div>\
         <div class=\"card\">Tokens<b>{}</b></div><div class=\"card\">Physical verifier<b>{}</b></div></div>\
         <section><h2>Trust around this member</h2>{}</section>",
        esc(&me.pubkey),
        me.score,
        me.rank,
        balance_text(me.balance),
        if me.verifier { "yes" } else { "no" },
        charts::trust_graph(&me.pubkey, me.score, &around)
    );
    render(&hub, &headers, "Identity", &body).into_response()
}

async fn node_page(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Html<String> {
    let n = views::node(&hub);
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Node</h1><div class=\"cards\"><div class=\"card\">Chain height<b id=\"height\">{}</b></div>\
         <div class=\"card\">Electrum clients<b>{}</b></div><div class=\"card\">Lightning channels<b>{}</b></div>\
         <div class=\"card\">Moneysocket pairs<b>{}</b></div><div class=\"card\">NWC apps<b>{}</b></div></div>\
         <section><h2>Electrum server</h2><p class=\"mono\">{}</p><p>{} subscriptions; index {}.</p></section>\
         <section><h2>Lightning</h2><p>Node <span class=\"mono\">{}</span></p><p>Listening on {}</p>\
         <p>{} sat in channels, {} sat on chain.</p><table><tr><th>Peer</th><th>Capacity</th><th>Can send</th>\
         <th>Can receive</th><th>Usable</th></tr>",
        n.height,
        n.electrum_clients,
        n.channels.len(),
        n.moneysocket_pairs,
        n.nwc_connections,
        esc(&n.electrum_url),
        n.electrum_subscriptions,
        if n.electrum_synced { "at the tip" } else { "catching up" },
        esc(&n.lightning_node_id),
        esc(&n.lightning_addresses.join(", ")),
        num(n.lightning_sats),
        num(n.onchain_sats),
    );
    for c in &n.channels {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.peer),
            num(c.capacity_sats),
            num(c.outbound_sats),
            num(c.inbound_sats),
            if c.usable { "yes" } else { "no" }
        );
    }
    let _ = write!(
        body,
        "</table></section><section><h2>Relays</h2><p>Moneysocket: <span class=\"mono\">{}</span>, \
         {} connections open.</p><p>Nostr: {}</p></section>",
        esc(&n.moneysocket_url),
        n.moneysocket_connections,
        n.nostr_relays
            .iter()
            .map(|r| format!("<span class=\"mono\">{}</span>", esc(r)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    render(&hub, &headers, "Node", &body)
}

fn qr_block(title: &str, uri: &str, note: &str, id: &str) -> String {
    let qr = qr_svg(uri).unwrap_or_else(|e| format!("<p>{}</p>", esc(&e.to_string())));
    format!(
        "<section><h2>{}</h2><p>{}</p><div class=\"qr\">{qr}</div><p class=\"mono\" id=\"{}\">{}</p></section>",
        esc(title),
        note,
        esc(id),
        esc(uri)
    )
}

async fn pair_page(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Html<String> {
    let mut body = String::from("<h1>Pair a wallet</h1>");
    body.push_str(&qr_block(
        "Electrum server",
        &hub.node.electrum_url,
        "Point an Electrum wallet (or any BDK wallet) at this server.",
        "electrum-uri",
    ));
    match session(&hub, &headers) {
        Some((_, s)) if s.operator => {
            let _ = write!(
                body,
                "<section><h2>Moneysocket beacon</h2><p>An app that scans the beacon spends the beacon's own \
                 account (what the operator funds it with and what its invoices receive), within the limit, until it expires.</p><form method=\"post\" action=\"/pair/beacon\" class=\"action\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{0}\">{1}{6}{7}<button type=\"submit\">Make a beacon</button>\
                 </form></section><section><h2>Nostr Wallet Connect</h2><p>An NWC app spends from the node's wallet \
                 within its budget, until it expires.</p><form method=\"post\" action=\"/pair/nwc\" class=\"action\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{0}\">{2}{3}{4}{5}{8}<button type=\"submit\">Connect an app</button>\
                 </form></section>",
                esc(&s.csrf),
                input("limit_sat", "Limit (sat, optional)", "", "100000"),
                input("name", "App name", "", "my phone"),
                input("budget_sat", "Budget (sat, optional)", "", "50000"),
                RENEWAL_SELECT,
                input("expires_in_days", "Expires in (days, optional)", "", "30"),
                BEACON_RENEWAL_SELECT,
                input("expires_in_days", "Expires in (days, optional)", "", "30"),
                PERMISSION_BOXES,
            );
            body.push_str(&beacons_section(&hub, &s.csrf));
            body.push_str(&nwc_section(&hub, &s.csrf));
        }
        _ => body.push_str(
            "<p>Beacons and NWC connections spend from the node's wallet: \
             <a href=\"/login\">log in as the operator</a> to make them.</p>",
        ),
    }
    render(&hub, &headers, "Pair", &body)
}

/// The beacons made (never their seeds): limit, spent, reserved, the balance of its account,
/// and a revoke button each.
fn beacons_section(hub: &Hub, csrf: &str) -> String {
    let beacons = hub.beacons.list();
    if beacons.is_empty() {
        return String::new();
    }
    let sat = |msat: u64| num(msat / 1_000);
    let mut rows = String::new();
    for b in beacons {
        let state = if b.revoked_at.is_some() {
            "revoked".to_owned()
        } else if b.expired {
            "expired".to_owned()
        } else {
            let until = b
                .expires_at
                .map_or_else(String::new, |at| format!("until {at} (Unix) "));
            format!(
                "{until}{fund}<form method=\"post\" action=\"/pair/beacons/{0}/revoke\" class=\"action\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{1}\"><button type=\"submit\">Revoke</button></form>",
                esc(&b.id),
                esc(csrf),
                fund = fund_form(&format!("/pair/beacons/{}/fund", b.id), csrf),
            )
        };
        let _ = write!(
            rows,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&b.id),
            b.limit_msat.map_or_else(|| "none".to_owned(), sat),
            esc(&b.budget_renewal),
            b.left_msat.map_or_else(String::new, sat),
            sat(b.spent_msat),
            sat(b.reserved_msat),
            sat(b.balance_msat),
            state
        );
    }
    format!(
        "<section><h2>Beacons</h2><table><tr><th>Beacon</th><th>Limit (sat)</th><th>Renews</th>\
         <th>Left (sat)</th><th>Spent (sat)</th><th>Reserved (sat)</th><th>Balance (sat)</th><th></th></tr>\
         {rows}</table></section>"
    )
}

/// The operator's form moving free collateral to a beacon's or an app's own account, posted
/// to `action` (a path of ids only: hex) with the session's CSRF token.
fn fund_form(action: &str, csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"action\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">{}<button type=\"submit\">Fund</button></form>",
        esc(action),
        esc(csrf),
        input("sats", "Sat", "", "10000"),
    )
}

/// Funds beacon `id` (the API's `POST /api/pairing/beacons/{id}/fund`): operator only, with
/// the session's CSRF token, as every operator form.
async fn beacon_fund(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refusal) =
        unless_operator(&hub, &headers, &fields, "Only the operator funds beacons.")
    {
        return refusal;
    }
    let funded = actions::amount(&fields, "sats")
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
        .and_then(|sats| api::fund_beacon(&hub, &id, sats).map_err(|f| (f.status, f.message)));
    match funded {
        Ok(_) => Redirect::to("/pair").into_response(),
        Err((status, message)) => refused(&hub, &headers, status, &message),
    }
}

/// Funds NWC app `client` (the API's `POST /api/pairing/nwc/{client}/fund`): operator only,
/// with the session's CSRF token, as every operator form.
async fn app_fund(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(client): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refusal) = unless_operator(&hub, &headers, &fields, "Only the operator funds apps.")
    {
        return refusal;
    }
    let funded = actions::amount(&fields, "sats")
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
        .and_then(|sats| api::fund_app(&hub, &client, sats).map_err(|f| (f.status, f.message)));
    match funded {
        Ok(_) => Redirect::to("/pair").into_response(),
        Err((status, message)) => refused(&hub, &headers, status, &message),
    }
}

/// The refusal for a form only the operator may post, or `None` when the session is the
/// operator's.
fn unless_operator(hub: &Hub, headers: &HeaderMap, fields: &Fields, why: &str) -> Option<Response> {
    match checked_session(hub, headers, fields) {
        Some((_, s)) if s.operator => None,
        _ => Some(refused(hub, headers, StatusCode::FORBIDDEN, why)),
    }
}

async fn beacon_revoke(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refusal) = unless_operator(
        &hub,
        &headers,
        &fields,
        "Only the operator revokes beacons.",
    ) {
        return refusal;
    }
    match api::revoke_beacon(&hub, &id) {
        Ok(_) => Redirect::to("/pair").into_response(),
        Err(f) => refused(&hub, &headers, f.status, &f.message),
    }
}

fn optional_amount(fields: &Fields, name: &str) -> Result<Option<u64>, String> {
    match fields.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(_) => actions::amount(fields, name)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

/// When an NWC budget renews: Alby Hub's names, at the start of the UTC calendar period.
const RENEWAL_SELECT: &str = "<label>Budget renews<select name=\"budget_renewal\">\
     <option value=\"daily\">daily</option><option value=\"weekly\">weekly (Monday)</option>\
     <option value=\"monthly\">monthly</option><option value=\"yearly\">yearly</option>\
     <option value=\"never\">never</option></select></label>";

/// What an NWC app may do: `pay`, `receive`, `read` ticked (the API's default), `sign` not.
const PERMISSION_BOXES: &str = "<fieldset><legend>The app may</legend>\
     <label><input type=\"checkbox\" name=\"permission_pay\" checked> pay</label>\
     <label><input type=\"checkbox\" name=\"permission_receive\" checked> receive</label>\
     <label><input type=\"checkbox\" name=\"permission_read\" checked> read (balance, history)</label>\
     <label><input type=\"checkbox\" name=\"permission_sign\"> sign messages as the node</label>\
     </fieldset>";

/// When a beacon's limit renews: the same names; `never` first, a lifetime limit as beacons
/// had before limits renewed.
const BEACON_RENEWAL_SELECT: &str = "<label>Limit renews<select name=\"budget_renewal\">\
     <option value=\"never\">never</option><option value=\"daily\">daily</option>\
     <option value=\"weekly\">weekly (Monday)</option><option value=\"monthly\">monthly</option>\
     <option value=\"yearly\">yearly</option></select></label>";

/// The NWC connections (never their secrets): budget, renewal, what is left this period,
/// expiry and the balance of each one's account.
fn nwc_section(hub: &Hub, csrf: &str) -> String {
    let connections = api::nwc_connections(hub);
    if connections.is_empty() {
        return String::new();
    }
    let sat = |msat: u64| (msat / 1_000).to_string();
    let mut rows = String::new();
    for c in &connections {
        let state = if c.revoked {
            "revoked".to_owned()
        } else if c.expired {
            "expired".to_owned()
        } else {
            c.expires_at
                .map_or_else(|| "active".to_owned(), |at| format!("until {at} (Unix)"))
        };
        let fund = if c.revoked || c.expired {
            String::new()
        } else {
            fund_form(&format!("/pair/nwc/{}/fund", c.client), csrf)
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            esc(&c.name),
            esc(&c.client),
            c.budget_msat.map_or_else(|| "none".to_owned(), sat),
            esc(c.budget_renewal.as_deref().unwrap_or("")),
            c.left_msat.map_or_else(String::new, sat),
            sat(c.balance_msat),
            esc(&c.permissions.join(", ")),
            esc(&state),
            fund
        );
    }
    format!(
        "<section><h2>NWC apps</h2><table><tr><th>App</th><th>Client key</th><th>Budget (sat)</th>\
         <th>Renews</th><th>Left (sat)</th><th>Balance (sat)</th><th>May</th><th></th></tr>{rows}</table></section>"
    )
}

/// The beacon pairing form as the API's request: the expiry a number of days from now, as in
/// the NWC form.
fn beacon_request(fields: &Fields) -> Result<api::BeaconPairingRequest, String> {
    let expires_at = optional_amount(fields, "expires_in_days")?
        .map(|days| crate::util::now().saturating_add(days.saturating_mul(86_400)));
    Ok(api::BeaconPairingRequest {
        limit_sat: optional_amount(fields, "limit_sat")?,
        budget_renewal: fields
            .get("budget_renewal")
            .map(|v| v.trim().to_owned())
            .filter(|r| !r.is_empty()),
        expires_at,
    })
}

/// The NWC pairing form as the API's request: the expiry a number of days from now, since a
/// date is what the operator has in mind and the API wants Unix seconds.
fn nwc_request(fields: &Fields) -> Result<api::NwcPairingRequest, String> {
    let text = |name: &str| fields.get(name).map(|v| v.trim().to_owned());
    let expires_at = optional_amount(fields, "expires_in_days")?
        .map(|days| crate::util::now().saturating_add(days.saturating_mul(86_400)));
    Ok(api::NwcPairingRequest {
        name: text("name").unwrap_or_default(),
        budget_sat: optional_amount(fields, "budget_sat")?,
        budget_renewal: text("budget_renewal").filter(|r| !r.is_empty()),
        expires_at,
        // Unticked boxes are not sent: the permissions are the ticked ones (none: refused).
        permissions: Some(
            ["pay", "receive", "read", "sign"]
                .into_iter()
                .filter(|p| fields.contains_key(&format!("permission_{p}")))
                .map(str::to_owned)
                .collect(),
        ),
    })
}

async fn pair_make(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refusal) = unless_operator(
        &hub,
        &headers,
        &fields,
        "Only the operator pairs wallets: log in with the token in the data directory.",
    ) {
        return refusal;
    }
    let made = match kind.as_str() {
        "beacon" => beacon_request(&fields).and_then(|request| {
            api::pair_beacon(&hub, &request)
                .map(|p| ("Moneysocket beacon", p.uri.to_uppercase(), "beacon"))
                .map_err(|f| f.message)
        }),
        "nwc" => nwc_request(&fields).and_then(|request| {
            api::pair_nwc(&hub, &request)
                .map(|p| ("Nostr Wallet Connect", p.uri, "nwc-uri"))
                .map_err(|f| f.message)
        }),
        _ => Err("no such pairing".into()),
    };
    match made {
        Ok((title, uri, id)) => {
            let body = qr_block(
                title,
                &uri,
                "Scan it with the app now. It is a bearer secret: whoever holds it spends within its limit; \
                 it is not shown again.",
                id,
            );
            render(&hub, &headers, title, &body).into_response()
        }
        Err(text) => refused(&hub, &headers, StatusCode::BAD_REQUEST, &text),
    }
}

async fn login_page(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Html<String> {
    let body = format!(
        "<h1>Log in</h1><section><h2>With a key held by this node</h2><p>For members without a Nostr signer: \
         the node keeps your key sealed under your password and signs your actions. A new name makes a new key.</p>\
         <form method=\"post\" action=\"/login\" class=\"action\">{}<label>Password\
         <input type=\"password\" name=\"password\" autocomplete=\"current-password\"></label>\
         <button type=\"submit\">Log in</button></form></section>\
         <section><h2>With a Nostr signer (NIP-07)</h2><p>Your browser extension signs every action; the node never \
         sees your key.</p><button type=\"button\" id=\"nip07-login\">Log in with my signer</button></section>\
         <section><h2>As the operator</h2><p>The token is in <code>api.token</code> in the node's data directory.</p>\
         <form method=\"post\" action=\"/login/operator\" class=\"action\"><label>Token\
         <input type=\"password\" name=\"token\"></label><button type=\"submit\">Log in</button></form></section>",
        input("name", "Name", "", "maria")
    );
    render(&hub, &headers, "Log in", &body)
}

/// The session cookie holding `token` for `max_age` seconds; `Secure` when the dashboard is
/// served over HTTPS, so the browser never sends it in clear.
fn session_cookie(hub: &Hub, token: &str, max_age: u64) -> String {
    let secure = if hub.https { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
}

fn with_cookie(hub: &Hub, token: &str, to: &str) -> Response {
    (
        [(header::SET_COOKIE, session_cookie(hub, token, SESSION_SECS))],
        Redirect::to(to),
    )
        .into_response()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

async fn login_local(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    if cross_site(&headers) {
        return refused(&hub, &headers, StatusCode::FORBIDDEN, CROSS_SITE_LOGIN);
    }
    let name = fields
        .get("name")
        .map(|n| n.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let password = fields.get("password").cloned().unwrap_or_default();
    if !valid_name(&name) {
        return refused(
            &hub,
            &headers,
            StatusCode::BAD_REQUEST,
            "A name is 1 to 32 letters, digits, - or _.",
        );
    }
    if password.len() < MIN_PASSWORD {
        return refused(
            &hub,
            &headers,
            StatusCode::BAD_REQUEST,
            "The password needs at least 8 characters.",
        );
    }
    let slot = match hub.sessions.logins.admit(&name, now()) {
        Ok(slot) => slot,
        Err(Throttled::Busy) => {
            return throttled(
                &hub,
                &headers,
                1,
                "Too many logins are being checked right now. Try again in a moment.",
            )
        }
        Err(Throttled::Wait(secs)) => {
            return throttled(
                &hub,
                &headers,
                secs,
                &format!("Too many wrong passwords for {name}. Try again in {secs} s."),
            )
        }
    };
    let path = hub.users.join(format!("{name}.seed"));
    let keys = tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            crate::secrets::private_dir(dir).map_err(|e| e.to_string())?;
        }
        crate::secrets::sealed_nostr_keys(&path, &password).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    drop(slot);
    hub.sessions.logins.record(&name, keys.is_ok(), now());
    let keys = match keys {
        Ok(keys) => keys,
        Err(_) => {
            return refused(
                &hub,
                &headers,
                StatusCode::FORBIDDEN,
                &format!("Wrong password for {name}."),
            )
        }
    };
    let account = AccountId::from_bytes(keys.public_key().to_bytes());
    let token = hub
        .sessions
        .start(Some(account), Signer::Local { name, keys }, false, now());
    with_cookie(&hub, &token, "/wallet")
}

async fn login_operator(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    if cross_site(&headers) {
        return refused(&hub, &headers, StatusCode::FORBIDDEN, CROSS_SITE_LOGIN);
    }
    let given = fields.get("token").map(|t| t.trim()).unwrap_or_default();
    if !api::same(given.as_bytes(), hub.admin_token.as_bytes()) {
        return refused(
            &hub,
            &headers,
            StatusCode::FORBIDDEN,
            "Wrong operator token.",
        );
    }
    let token = hub.sessions.start(None, Signer::None, true, now());
    with_cookie(&hub, &token, "/pair")
}

async fn login_challenge(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    if cross_site(&headers) {
        return Failure::new(StatusCode::FORBIDDEN, CROSS_SITE_LOGIN).into_response();
    }
    Json(serde_json::json!({ "challenge": hub.sessions.challenge(now()) })).into_response()
}

async fn login_nip07(State(hub): State<Arc<Hub>>, headers: HeaderMap, body: String) -> Response {
    let fail = |status, text: &str| Failure::new(status, text).into_response();
    if cross_site(&headers) {
        return fail(StatusCode::FORBIDDEN, CROSS_SITE_LOGIN);
    }
    let Ok(event) = Event::from_json(&body) else {
        return fail(StatusCode::BAD_REQUEST, "not a Nostr event");
    };
    if event.verify().is_err() {
        return fail(StatusCode::UNAUTHORIZED, "the signature does not verify");
    }
    let challenge = moip_work::events::first_value(&event, "challenge").unwrap_or_default();
    if event.kind != Kind::from(KIND_LOGIN)
        || event.created_at.as_secs().abs_diff(now()) > session::CHALLENGE_SECS
        || !hub.sessions.redeem_challenge(challenge, now())
    {
        return fail(
            StatusCode::UNAUTHORIZED,
            "sign a fresh login challenge (kind 22242)",
        );
    }
    let account = AccountId::from_bytes(event.pubkey.to_bytes());
    let token = hub
        .sessions
        .start(Some(account), Signer::Browser, false, now());
    (
        [(
            header::SET_COOKIE,
            session_cookie(&hub, &token, SESSION_SECS),
        )],
        Json(serde_json::json!({ "pubkey": account.to_string() })),
    )
        .into_response()
}

async fn logout(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some((token, _)) = checked_session(&hub, &headers, &fields) {
        hub.sessions.end(&token);
    }
    (
        [(header::SET_COOKIE, session_cookie(&hub, "", 0))],
        Redirect::to("/"),
    )
        .into_response()
}

async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("app.js"),
    )
        .into_response()
}

async fn not_found(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    refused(&hub, &headers, StatusCode::NOT_FOUND, "No such page.")
}

/// The dashboard's routes, with the API's under `/api`.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/tasks", get(tasks_page))
        .route("/tasks/{id}", get(task_page))
        .route("/wallet", get(wallet))
        .route("/deposit", post(deposit))
        .route("/act", post(act))
        .route("/identities", get(identities_page))
        .route("/identities/{pubkey}", get(identity_page))
        .route("/node", get(node_page))
        .route("/pair", get(pair_page))
        .route("/pair/{kind}", post(pair_make))
        .route("/pair/beacons/{id}/revoke", post(beacon_revoke))
        .route("/pair/beacons/{id}/fund", post(beacon_fund))
        .route("/pair/nwc/{client}/fund", post(app_fund))
        .route("/login", get(login_page).post(login_local))
        .route("/login/operator", post(login_operator))
        .route("/login/challenge", post(login_challenge))
        .route("/login/nip07", post(login_nip07))
        .route("/logout", post(logout))
        .route("/app.js", get(app_js))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(api::MAX_BODY))
        .with_state(Arc::clone(&hub))
        .merge(api::router(hub))
        .layer(axum::middleware::map_response(security_headers))
}

/// What the browser may do with the node's pages: run only `/app.js`, talk only to this origin,
/// send forms only here. Inline styles stay allowed (the pages and charts use them).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Headers on every answer, pages and API alike. Framing is refused because a framed pairing
/// page could be clicked into handing out a beacon or an NWC connection; nothing is sniffed as
/// another type; no URL leaks to other sites in a `Referer` (`same-origin`, not `no-referrer`:
/// under that, browsers send `Origin: null` with the node's own forms, and the login forms
/// tell other sites' posts by their origin).
async fn security_headers(mut response: Response) -> Response {
    use axum::http::HeaderValue;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
