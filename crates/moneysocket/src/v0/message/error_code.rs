//! Numeric error codes for `NOTIFY_ERROR`, beyond the reference (shortcoming M9).
//!
//! v0 errors are free text, so an app can only show them, not act on them. moip providers add
//! an `error_code` next to `error_msg`; legacy apps ignore the extra key and still read the
//! text. Codes are grouped by who must act: 1xx the request is wrong, 2xx the provider cannot
//! serve it now, 3xx the payment itself failed. Unknown codes are kept as they came, so a newer
//! peer's code survives a round trip through an older library.

use std::fmt;

/// A `NOTIFY_ERROR` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The request is malformed or names something the provider does not know.
    pub const INVALID_REQUEST: ErrorCode = ErrorCode(100);
    /// The invoice does not parse or is for another network.
    pub const INVALID_INVOICE: ErrorCode = ErrorCode(101);
    /// The invoice has no amount and the request gave none (or gave one for an invoice that
    /// has its own).
    pub const AMOUNT_MISMATCH: ErrorCode = ErrorCode(102);
    /// The request is valid but this provider does not offer it.
    pub const UNSUPPORTED: ErrorCode = ErrorCode(103);
    /// The authenticated-encryption layer is required and was not negotiated.
    pub const SECURE_LAYER_REQUIRED: ErrorCode = ErrorCode(104);
    /// The provider's wallet is not ready.
    pub const NOT_READY: ErrorCode = ErrorCode(200);
    /// The beacon's spending limit would be exceeded.
    pub const SPENDING_LIMIT: ErrorCode = ErrorCode(201);
    /// The balance does not cover the amount plus fees.
    pub const INSUFFICIENT_BALANCE: ErrorCode = ErrorCode(202);
    /// The wallet could not make an invoice.
    pub const INVOICE_FAILED: ErrorCode = ErrorCode(203);
    /// The payment was tried and failed (no route, rejected by the payee, timed out).
    pub const PAYMENT_FAILED: ErrorCode = ErrorCode(300);

    /// The code as a short name, for logs and UIs; `None` for a code this library does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            ErrorCode::INVALID_REQUEST => "invalid request",
            ErrorCode::INVALID_INVOICE => "invalid invoice",
            ErrorCode::AMOUNT_MISMATCH => "amount mismatch",
            ErrorCode::UNSUPPORTED => "unsupported",
            ErrorCode::SECURE_LAYER_REQUIRED => "authenticated layer required",
            ErrorCode::NOT_READY => "not ready",
            ErrorCode::SPENDING_LIMIT => "spending limit",
            ErrorCode::INSUFFICIENT_BALANCE => "insufficient balance",
            ErrorCode::INVOICE_FAILED => "invoice failed",
            ErrorCode::PAYMENT_FAILED => "payment failed",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}
