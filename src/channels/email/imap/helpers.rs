//! Small pure helpers: backoff, batching, UID sets, and the TLS trust store.

use super::*;

/// The reconnect delay after `attempt` failures in a row (0 for the
/// first): the one retry policy (`crate::retry`), `base * 2^attempt` capped
/// with up to 25 % jitter, so a fleet of workers does not reconnect in
/// lockstep.
pub(super) fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    crate::retry::Backoff::new(base, cap).delay(attempt.saturating_add(1))
}

/// Splits sorted `(uid, size)` pairs into batches of at most `max_count`
/// messages and about `max_bytes` (a larger single message goes alone).
pub(super) fn batches(
    items: &[(u32, u64)],
    max_count: usize,
    max_bytes: u64,
) -> Vec<&[(u32, u64)]> {
    let max_count = max_count.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, (_, size)) in items.iter().enumerate() {
        let count = i - start;
        if count > 0 && (count >= max_count || bytes.saturating_add(*size) > max_bytes) {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(*size);
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Sorted UIDs as a compact IMAP set: `1:3,7,9:10`.
pub(super) fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// The rustls config for `ca_file` (see `crate::tls`): Mozilla's roots plus
/// every certificate in it, each of which is also accepted as the server's
/// own (a pin).
pub(super) async fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let ca_certs = match ca_file.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|e| format!("reading ca_file {}: {e}", path.display()))?;
            crate::tls::parse_ca_pem(&pem, path)?
        }
        None => Vec::new(),
    };
    crate::tls::client_config(ca_certs)
}
