//! The command line: `valex [--data-dir D] [--json] [--control ADDR] <command> …`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use libp2p::Multiaddr;

/// valex: fair exchange of electronic values over libp2p (patent JP4020007).
#[derive(Debug, Parser)]
#[command(name = "valex", version, about, propagate_version = true)]
pub struct Cli {
    /// The node's data directory: identity key, database, control address
    /// [default: $VALEX_DATA_DIR, else ~/.valex].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The daemon's control address. For `run`: where to serve it (127.0.0.1 only; default: a free
    /// port). For other commands: where to find it (default: read from <data-dir>/control.addr).
    #[arg(long, global = true, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory and the node's identity key; print its PeerId.
    Init {
        /// Replace an existing identity key (the old identity is lost).
        #[arg(long)]
        force: bool,
    },
    /// Run the node daemon until Ctrl-C or SIGTERM.
    Run(RunArgs),
    /// Show the running node's PeerId, addresses and version.
    Info,
    /// Issue, list and inspect values.
    #[command(subcommand)]
    Value(ValueCommand),
    /// Exchange one of our values for a peer's, and wait for the outcome.
    ///
    /// Interrupting the command does not stop the exchange: the daemon carries on (see `valex sessions`).
    Exchange(ExchangeArgs),
    /// List exchange sessions, open and ended.
    Sessions,
    /// Follow what happens on the node, one line (or, with --json, one JSON object) per event,
    /// until Ctrl-C or the daemon stops.
    Events {
        /// Stop after this many events (default: follow until interrupted).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// List the arbiters the node has discovered.
    Arbiters,
    /// List known peers.
    Peers,
    /// Connect to a peer.
    Dial {
        /// Its multiaddr, e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW….
        addr: Multiaddr,
    },
}

/// `valex run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Listen on this multiaddr (repeatable).
    #[arg(long, value_name = "MULTIADDR", default_value = "/ip4/127.0.0.1/tcp/0")]
    pub listen: Vec<Multiaddr>,
    /// Connect to this peer at start, with /p2p/<peer id> (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Accept only this arbiter (repeatable; default: any).
    #[arg(long, value_name = "PEER")]
    pub accept_arbiter: Vec<String>,
    /// Accept values only from this issuer (repeatable; default: any).
    #[arg(long, value_name = "PEER")]
    pub accept_issuer: Vec<String>,
    /// Default time to expiry of the exchanges we start, in ms.
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub ttl_ms: u64,
    /// Interval between retries of M1, M3 and (at first) arbiter requests, in ms.
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    pub retry_ms: u64,
    /// How long the initiator keeps retrying M3 after expiry before asking the arbiter, in ms.
    #[arg(long, value_name = "MS", default_value_t = 2_000)]
    pub grace_ms: u64,
    /// Longest interval between arbiter retries (they back off exponentially), in ms.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub arbiter_retry_max_ms: u64,
}

/// `valex value …`.
#[derive(Debug, Subcommand)]
pub enum ValueCommand {
    /// Issue a value under this node's key into its vault.
    Issue {
        /// Its kind, e.g. "ticket" (at most 64 bytes).
        #[arg(long)]
        kind: String,
        /// Its amount.
        #[arg(long)]
        amount: u64,
        /// Its payload, in hex (at most 16 KiB).
        #[arg(long, value_name = "HEX")]
        payload_hex: Option<String>,
    },
    /// List the vault.
    List,
    /// Show one value, with its receipt if acquired by exchange.
    Show {
        /// The value id (64 hex characters).
        id: String,
    },
}

/// `valex exchange`.
#[derive(Debug, Args)]
pub struct ExchangeArgs {
    /// The responder's PeerId.
    #[arg(long, value_name = "PEER")]
    pub peer: String,
    /// The id of the value we give.
    #[arg(long, value_name = "ID")]
    pub give: String,
    /// What we want: a value id, or KIND:AMOUNT for any value of that kind and amount.
    #[arg(long, value_name = "ID|KIND:AMOUNT")]
    pub want: String,
    /// With KIND:AMOUNT: only from this issuer.
    #[arg(long, value_name = "PEER")]
    pub want_issuer: Option<String>,
    /// The arbiter (default: one from the directory that the peer accepts).
    #[arg(long, value_name = "PEER")]
    pub arbiter: Option<String>,
    /// Time to expiry, in ms (default: the daemon's).
    #[arg(long, value_name = "MS")]
    pub ttl_ms: Option<u64>,
}
