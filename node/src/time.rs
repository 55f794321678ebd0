//! Wall-clock time as the protocol counts it: milliseconds since the Unix epoch.
//!
//! The sans-IO core never reads the clock (it is handed `now_ms` in its [`Ctx`](crate::exchange::Ctx));
//! the drivers around it — the node's event loop, the arbiter server, the tests — read it here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: 0 for a clock set before 1970, `u64::MAX` past the year
/// 584 million. Never panics.
///
/// ```
/// let (a, b) = (valex_node::time::now_ms(), valex_node::time::now_ms());
/// assert!(a > 1_600_000_000_000 && b >= a);
/// ```
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
