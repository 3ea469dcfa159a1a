//! BIP21 payment URIs and QR codes drawn in the terminal.

use bitcoin::{Address, Amount};
use qrcode::render::unicode;
use qrcode::QrCode;

/// `bitcoin:<address>?amount=…&label=…&message=…` (amount in BTC, text percent-encoded).
pub fn uri(
    address: &Address,
    amount: Option<Amount>,
    label: Option<&str>,
    message: Option<&str>,
) -> String {
    let mut uri = format!("bitcoin:{address}");
    let mut params = Vec::new();
    if let Some(amount) = amount {
        params.push(format!(
            "amount={}",
            amount.to_string_in(bitcoin::Denomination::Bitcoin)
        ));
    }
    if let Some(label) = label {
        params.push(format!("label={}", percent_encode(label)));
    }
    if let Some(message) = message {
        params.push(format!("message={}", percent_encode(message)));
    }
    if !params.is_empty() {
        uri.push('?');
        uri.push_str(&params.join("&"));
    }
    uri
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `text` as a QR code of half-block characters, two modules per character row, with the
/// quiet zone; readable by phone cameras from a terminal.
pub fn qr(text: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::new(text.as_bytes())?;
    Ok(code
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn uri_carries_amount_in_btc_and_encodes_text() {
        let address = Address::from_str("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
            .expect("address")
            .assume_checked();
        let u = uri(
            &address,
            Some(Amount::from_sat(150_000)),
            Some("Maria's bakery"),
            None,
        );
        assert_eq!(
            u,
            "bitcoin:bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080?amount=0.0015&label=Maria%27s%20bakery"
        );
        let code = qr(&u).expect("qr");
        assert!(code.lines().count() > 20);
        assert!(code.contains('█') || code.contains('▀') || code.contains('▄'));
    }
}
