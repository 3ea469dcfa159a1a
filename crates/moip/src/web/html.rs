//! The page frame and the small pieces every page uses: escaping, numbers, keys, forms.

use std::fmt::Write as _;

use super::session::{Session, Signer};

/// `text` safe inside HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `n` with thin groups of three digits: 1 250 000.
pub fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A key shortened for reading (the full key in the title, a link to its page).
pub fn key_link(hex: &str) -> String {
    let short = if hex.len() > 16 {
        format!("{}…{}", &hex[..8], &hex[hex.len() - 4..])
    } else {
        hex.to_owned()
    };
    format!(
        "<a class=\"key\" href=\"/identities/{0}\" title=\"{0}\">{1}</a>",
        esc(hex),
        esc(&short)
    )
}

/// How long until (or since) `at`, for a person.
pub fn when(at: u64, now: u64) -> String {
    let (d, future) = if at >= now {
        (at - now, true)
    } else {
        (now - at, false)
    };
    let text = match d {
        0..=89 => format!("{d} s"),
        90..=5_399 => format!("{} min", d / 60),
        5_400..=172_799 => format!("{} h", d / 3_600),
        _ => format!("{} days", d / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A form that performs `action` as the logged-in member: the server signs for a local user,
/// the browser's signer for a NIP-07 session (`data-sign`, see `app.js`).
pub fn action_form(csrf: &str, action: &str, back: &str, inner: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/act\" data-sign class=\"action\">\
         <input type=\"hidden\" name=\"action\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"back\" value=\"{}\">{inner}\
         <button type=\"submit\" name=\"do\" value=\"{0}\">{}</button></form>",
        esc(action),
        esc(csrf),
        esc(back),
        esc(button)
    )
}

/// A labelled text input.
pub fn input(name: &str, label: &str, value: &str, placeholder: &str) -> String {
    format!(
        "<label>{}<input name=\"{}\" value=\"{}\" placeholder=\"{}\"></label>",
        esc(label),
        esc(name),
        esc(value),
        esc(placeholder)
    )
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}\
header{background:#1d3557;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}\
header a{color:#fff;text-decoration:none}header .who{margin-left:auto}\
main{max-width:1040px;margin:1em auto;padding:0 1em}\
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:.8em}\
.card{background:#fff;border-radius:8px;padding:.8em 1em;box-shadow:0 1px 2px #0002}\
.card b{display:block;font-size:1.4em}table{border-collapse:collapse;width:100%;background:#fff}\
td,th{padding:.35em .6em;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}\
form.action{display:inline-flex;gap:.4em;flex-wrap:wrap;align-items:end;margin:.2em 0}\
label{display:flex;flex-direction:column;font-size:.85em}input{font:inherit;padding:.25em .4em}\
button{font:inherit;padding:.3em .8em;background:#457b9d;color:#fff;border:0;border-radius:4px;cursor:pointer}\
.flash{padding:.6em 1em;border-radius:6px;margin:.6em 0}.ok{background:#d8f3dc}.bad{background:#ffd6d6}\
.key{font-family:ui-monospace,monospace}.mono{font-family:ui-monospace,monospace;word-break:break-all}\
.state{padding:.1em .5em;border-radius:9px;background:#e9ecef}.qr svg{width:220px;height:220px}\
section{margin:1.2em 0}h2{font-size:1.15em}";

/// The page frame: navigation, who is logged in, a flash message, then `body`.
pub fn page(
    title: &str,
    community: &str,
    session: Option<&Session>,
    flash: Option<(bool, String)>,
    body: &str,
) -> String {
    let mut out = String::with_capacity(body.len() + 4_096);
    let (signer, pubkey) = match session {
        Some(Session {
            signer: Signer::Browser,
            account: Some(a),
            ..
        }) => ("nip07", a.to_string()),
        Some(Session {
            signer: Signer::Local { .. },
            account: Some(a),
            ..
        }) => ("local", a.to_string()),
        _ => ("none", String::new()),
    };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · {}</title><style>{STYLE}</style></head>\
         <body data-signer=\"{signer}\" data-pubkey=\"{}\"><header><strong>{}</strong>\
         <a href=\"/\">Overview</a><a href=\"/tasks\">Tasks</a><a href=\"/wallet\">Wallet</a>\
         <a href=\"/identities\">Identities</a><a href=\"/node\">Node</a><a href=\"/pair\">Pair</a>",
        esc(title),
        esc(community),
        esc(&pubkey),
        esc(community)
    );
    match session {
        Some(s) => {
            let who = match &s.signer {
                Signer::Local { name, .. } => esc(name),
                Signer::Browser => "NIP-07 signer".to_owned(),
                Signer::None => "operator".to_owned(),
            };
            let _ = write!(
                out,
                "<span class=\"who\" id=\"who\">{who}{}</span>\
                 <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Log out</button></form>",
                if s.operator { " (operator)" } else { "" },
                esc(&s.csrf)
            );
        }
        None => out.push_str("<a class=\"who\" href=\"/login\" id=\"who\">Log in</a>"),
    }
    out.push_str("</header><main>");
    if let Some((ok, text)) = flash {
        let _ = write!(
            out,
            "<div class=\"flash {}\" id=\"flash\">{}</div>",
            if ok { "ok" } else { "bad" },
            esc(&text)
        );
    }
    out.push_str(body);
    out.push_str("</main><script src=\"/app.js\"></script></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_grouped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(num(0), "0");
        assert_eq!(num(1_250_000), "1\u{202f}250\u{202f}000");
        assert_eq!(num(999), "999");
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(when(130, 100), "in 30 s");
        assert_eq!(when(100, 100 + 7_200), "2 h ago");
        assert_eq!(when(100 + 3 * 86_400, 100), "in 3 days");
    }
}
