//! Printing results: one JSON document with `--json`, else short aligned lines and tables.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;
use valex_node::control::pb::{self, receipt_view};

/// Prints `value` as one pretty JSON document.
pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths.get(i).copied().unwrap_or(0));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key  value` lines, keys aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{k:<width$}  {v}\n")).collect()
}

/// The first 16 characters of a long identifier, for tables.
pub fn short(id: &str) -> String {
    match id.char_indices().nth(16) {
        Some((end, _)) => format!("{}…", &id[..end]),
        None => id.to_owned(),
    }
}

/// One value, with how it got into the vault and its receipt.
pub fn value_info(info: &pb::ValueInfo) -> String {
    let mut pairs = Vec::new();
    if let Some(value) = &info.value {
        pairs.extend(value_fields(value));
    }
    let acquired = if info.acquired_session.is_empty() {
        info.acquired.clone()
    } else {
        format!("{} (session {})", info.acquired, info.acquired_session)
    };
    pairs.push(("acquired", acquired));
    pairs.push(("state", if info.locked_by.is_empty() { "spendable".to_owned() } else { format!("locked by session {}", info.locked_by) }));
    let mut out = fields(&pairs);
    if let Some(receipt) = &info.receipt {
        out.push_str("receipt:\n");
        out.push_str(&indent(&receipt_text(receipt)));
    }
    out
}

fn value_fields(value: &pb::ValueView) -> Vec<(&'static str, String)> {
    vec![
        ("id", value.id.clone()),
        ("kind", value.kind.clone()),
        ("amount", value.amount.to_string()),
        ("issuer", value.issuer.clone()),
        ("serial", value.serial.clone()),
        ("payload", if value.payload.is_empty() { "(empty)".to_owned() } else { hex::encode(&value.payload) }),
    ]
}

/// A receipt: the terms, s2, the signatures and the evidence.
pub fn receipt_text(receipt: &pb::ReceiptView) -> String {
    let mut pairs = Vec::new();
    if let Some(terms) = &receipt.terms {
        pairs.extend([
            ("session", terms.s1.clone()),
            ("initiator", terms.initiator.clone()),
            ("responder", terms.responder.clone()),
            ("arbiter", terms.arbiter.clone()),
            ("v1", terms.v1_id.clone()),
            ("v2", terms.v2_id.clone()),
            ("expires_at_ms", terms.expires_at_ms.to_string()),
            ("h", terms.h.clone()),
        ]);
    }
    pairs.push(("s2", receipt.s2.clone()));
    pairs.push(("sa", receipt.sa.clone()));
    pairs.push(("se", if receipt.se.is_empty() { "(none: settled by the arbiter)".to_owned() } else { receipt.se.clone() }));
    match &receipt.evidence {
        Some(receipt_view::Evidence::R2(r2)) => pairs.push(("r2", r2.clone())),
        Some(receipt_view::Evidence::Decision(d)) => {
            pairs.push(("decision", format!("{} at {} ms", d.outcome, d.decided_at_ms)));
            pairs.push(("decision sig", d.sig.clone()));
        }
        None => pairs.push(("evidence", "(none)".to_owned())),
    }
    fields(&pairs)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The end of an exchange: outcome, what was received, the receipt.
pub fn exchange_result(result: &pb::ExchangeResult) -> String {
    let mut pairs = vec![("session", result.session.clone()), ("outcome", result.outcome.clone()), ("phase", result.phase.clone())];
    if result.settled_by_arbiter {
        pairs.push(("settled by", "the arbiter".to_owned()));
    }
    if !result.aborted_reason.is_empty() {
        pairs.push(("reason", result.aborted_reason.clone()));
    }
    let mut out = fields(&pairs);
    if let Some(value) = &result.received {
        out.push_str("received:\n");
        out.push_str(&indent(&fields(&value_fields(value))));
    }
    if let Some(receipt) = &result.receipt {
        out.push_str("receipt:\n");
        out.push_str(&indent(&receipt_text(receipt)));
    }
    out
}

/// The vault as a table.
pub fn values(values: &[pb::ValueInfo]) -> String {
    if values.is_empty() {
        return "no values\n".to_owned();
    }
    let rows: Vec<Vec<String>> = values
        .iter()
        .map(|info| {
            let value = info.value.clone().unwrap_or_default();
            let state = if info.locked_by.is_empty() { "spendable".to_owned() } else { format!("locked ({})", short(&info.locked_by)) };
            vec![value.id, value.kind, value.amount.to_string(), info.acquired.clone(), state]
        })
        .collect();
    table(&["ID", "KIND", "AMOUNT", "ACQUIRED", "STATE"], &rows)
}

/// Sessions as a table.
pub fn sessions(sessions: &[pb::SessionInfo]) -> String {
    if sessions.is_empty() {
        return "no sessions\n".to_owned();
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            let outcome = if s.settled_by_arbiter { format!("{} (arbiter)", s.outcome) } else { s.outcome.clone() };
            vec![s.id.clone(), s.role.clone(), s.peer.clone(), s.phase.clone(), outcome, s.expires_at_ms.to_string()]
        })
        .collect();
    table(&["SESSION", "ROLE", "PEER", "PHASE", "OUTCOME", "EXPIRES_AT_MS"], &rows)
}

/// The arbiter directory as a table.
pub fn arbiters(arbiters: &[pb::ArbiterInfo]) -> String {
    if arbiters.is_empty() {
        return "no arbiters known\n".to_owned();
    }
    let rows: Vec<Vec<String>> = arbiters
        .iter()
        .map(|a| {
            let via: Vec<&str> =
                [(a.via_kademlia, "kademlia"), (a.via_gossipsub, "gossipsub")].iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
            vec![a.peer.clone(), a.name.clone(), via.join("+"), a.last_seen_ms.to_string(), a.addrs.join(" ")]
        })
        .collect();
    table(&["PEER", "NAME", "VIA", "LAST_SEEN_MS", "ADDRS"], &rows)
}

/// Peers as a table.
pub fn peers(peers: &[pb::PeerInfo]) -> String {
    if peers.is_empty() {
        return "no peers known\n".to_owned();
    }
    let rows: Vec<Vec<String>> =
        peers.iter().map(|p| vec![p.peer.clone(), if p.connected { "yes" } else { "no" }.to_owned(), p.addrs.join(" ")]).collect();
    table(&["PEER", "CONNECTED", "ADDRS"], &rows)
}

/// One line for a node event: its kind, then what it is about.
pub fn node_event(event: &pb::NodeEvent) -> String {
    let mut line = event.kind.replace('_', " ");
    if !event.session.is_empty() {
        line.push_str(&format!(" session={}", short(&event.session)));
    }
    if !event.role.is_empty() {
        line.push_str(&format!(" as={}", event.role));
    }
    if !event.peer.is_empty() {
        line.push_str(&format!(" peer={}", event.peer));
    }
    if !event.value.is_empty() {
        line.push_str(&format!(" value={}", short(&event.value)));
    }
    if let Some(result) = &event.result {
        line.push_str(&format!(" outcome={} phase={}", result.outcome, result.phase));
    }
    if event.kind == "lagged" {
        line.push_str(&format!(" missed={}", event.missed));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let text = table(&["A", "LONG"], &[vec!["xyz".into(), "1".into()], vec!["q".into(), "22".into()]]);
        assert_eq!(text, "A    LONG\nxyz  1\nq    22\n");
    }
}
