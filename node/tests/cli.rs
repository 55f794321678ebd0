//! The `valex` binary end to end: `init`, errors without a daemon, and a daemon driven through the
//! CLI. Every wait is bounded by a deadline; the daemons listen on 127.0.0.1 with OS-assigned ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

const VALEX: &str = env!("CARGO_BIN_EXE_valex");
/// How long a daemon may take to start (first start opens RocksDB and binds ports).
const START_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

fn valex(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(VALEX).arg("--data-dir").arg(data_dir).args(args).env_remove("RUST_LOG").stdin(Stdio::null()).output().expect("run valex")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must succeed, returning its stdout.
fn ok(data_dir: &Path, args: &[&str]) -> String {
    let output = valex(data_dir, args);
    assert!(output.status.success(), "valex {args:?} failed: {}", stderr(&output));
    stdout(&output)
}

/// Runs a command with `--json` that must succeed, returning the parsed document.
fn ok_json(data_dir: &Path, args: &[&str]) -> Json {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(data_dir, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("valex {args:?} printed no JSON ({e}): {text}"))
}

/// Runs a command that must fail with exactly one `error: …` line on stderr; returns that line.
fn fails(data_dir: &Path, args: &[&str]) -> String {
    let output = valex(data_dir, args);
    assert!(!output.status.success(), "valex {args:?} should have failed; stdout: {}", stdout(&output));
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "valex {args:?}: expected one stderr line, got: {err}");
    assert!(lines[0].starts_with("error: "), "valex {args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    lines[0].to_owned()
}

/// A `valex run` child process, killed on drop if still running.
struct Daemon {
    child: Child,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let log = data_dir.join("daemon.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(VALEX)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["run", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn valex run");
        let mut daemon = Self { child, data_dir: data_dir.to_owned(), log };
        daemon.wait_ready();
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the daemon to write its control address.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        let addr_file = self.data_dir.join("control.addr");
        while !addr_file.exists() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("valex run exited early ({status}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "valex run wrote no control.addr in {START_DEADLINE:?}: {}", self.log());
            std::thread::sleep(POLL);
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "valex run did not stop on SIGTERM: {}", self.log());
            std::thread::sleep(POLL);
        };
        assert!(status.success(), "valex run exited with {status}: {}", self.log());
        assert!(!self.data_dir.join("control.addr").exists(), "control.addr left behind");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn init(data_dir: &Path) -> String {
    ok(data_dir, &["init"]).trim().to_owned()
}

#[test]
fn init_creates_a_private_key_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let peer = init(&data_dir);
    assert!(peer.parse::<libp2p::PeerId>().is_ok(), "init printed {peer:?}");

    let key = data_dir.join("identity.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let before = std::fs::read(&key).unwrap();
    let line = fails(&data_dir, &["init"]);
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(std::fs::read(&key).unwrap(), before, "a refused init must not touch the key");

    let json = ok_json(&data_dir, &["init", "--force"]);
    let new_peer = json["peer_id"].as_str().unwrap();
    assert_ne!(new_peer, peer, "--force makes a new identity");
}

#[test]
fn commands_without_a_daemon_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");

    let line = fails(&data_dir, &["run"]);
    assert!(line.contains("valex init"), "run before init: {line}");

    init(&data_dir);
    for args in [&["value", "list"][..], &["sessions"], &["value", "show", &"ab".repeat(32)], &["peers"], &["info"]] {
        let line = fails(&data_dir, args);
        assert!(line.contains("no daemon running"), "{args:?}: {line}");
    }

    // A stale control address: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(data_dir.join("control.addr"), format!("127.0.0.1:{port}\n")).unwrap();
    let line = fails(&data_dir, &["value", "list"]);
    assert!(line.contains("cannot reach the daemon"), "{line}");

    // The control API is local only.
    let line = fails(&data_dir, &["--control", "0.0.0.0:0", "run"]);
    assert!(line.contains("loopback"), "{line}");

    // Usage errors are one line too.
    let line = fails(&data_dir, &["dial", "not-a-multiaddr"]);
    assert!(line.contains("not-a-multiaddr"), "{line}");
    let line = fails(&data_dir, &["value", "issue", "--amount", "1"]);
    assert!(line.contains("--kind"), "{line}");
}

#[test]
fn a_daemon_issues_lists_and_shows_values() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let peer = init(&data_dir);
    let daemon = Daemon::start(&data_dir, &[]);

    let info = ok_json(&data_dir, &["info"]);
    assert_eq!(info["peer_id"], peer.as_str());
    // --control finds the daemon without its data directory.
    let control = std::fs::read_to_string(data_dir.join("control.addr")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    assert_eq!(ok_json(&elsewhere, &["--control", control.trim(), "info"])["peer_id"], peer.as_str());
    assert!(info["listen_addrs"].as_array().unwrap().iter().any(|a| a.as_str().unwrap().starts_with("/ip4/127.0.0.1/tcp/")), "{info}");

    let issued = ok_json(&data_dir, &["value", "issue", "--kind", "ticket", "--amount", "3", "--payload-hex", "abcd"]);
    let id = issued["value"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 64);
    assert_eq!(issued["value"]["issuer"], peer.as_str());
    assert_eq!(issued["value"]["payload"], "abcd");
    assert_eq!(issued["acquired"], "issued");

    let list = ok_json(&data_dir, &["value", "list"]);
    let values = list["values"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{list}");
    assert_eq!(values[0]["value"]["id"], id.as_str());
    assert_eq!(values[0]["value"]["kind"], "ticket");
    assert_eq!(values[0]["value"]["amount"], 3);

    let table = ok(&data_dir, &["value", "list"]);
    assert!(table.starts_with("ID") && table.contains(&id) && table.contains("spendable"), "{table}");
    let shown = ok(&data_dir, &["value", "show", &id]);
    assert!(shown.contains(&id) && shown.contains("ticket") && shown.contains("issued"), "{shown}");

    let line = fails(&data_dir, &["value", "show", "xyz"]);
    assert!(line.contains("invalid value id"), "{line}");
    let line = fails(&data_dir, &["value", "show", &"00".repeat(32)]);
    assert!(line.contains("no value"), "{line}");
    let line = fails(&data_dir, &["exchange", "--peer", "nobody", "--give", &id, "--want", "voucher:5"]);
    assert!(line.contains("invalid peer"), "{line}");

    let sessions = ok_json(&data_dir, &["sessions"]);
    assert_eq!(sessions["sessions"].as_array().map(Vec::len), Some(0), "{sessions}");
    assert_eq!(ok(&data_dir, &["sessions"]).trim(), "no sessions");

    // Unreachable peers: a failed dial, and an exchange that aborts at its expiry.
    let nobody = valex_proto::crypto::Keypair::from_seed([99; 32]).peer_id().to_string();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let line = fails(&data_dir, &["dial", &format!("/ip4/127.0.0.1/tcp/{closed_port}/p2p/{nobody}")]);
    assert!(line.contains("dial failed"), "{line}");
    let output = valex(
        &data_dir,
        &["--json", "exchange", "--peer", &nobody, "--give", &id, "--want", "voucher:5", "--arbiter", &nobody, "--ttl-ms", "1000"],
    );
    assert!(!output.status.success());
    let result: Json = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["outcome"], "aborted", "{result}");
    assert!(stderr(&output).starts_with("error: exchange ") && stderr(&output).contains("aborted"), "{}", stderr(&output));
    let list = ok_json(&data_dir, &["value", "list"]);
    assert_eq!(list["values"][0]["locked_by"], "", "an aborted exchange unlocks the value: {list}");

    // One daemon per data directory.
    let line = fails(&data_dir, &["run"]);
    assert!(line.contains("already running"), "{line}");

    daemon.stop();

    // The vault is durable: a restarted daemon still holds the value.
    let daemon = Daemon::start(&data_dir, &[]);
    let list = ok_json(&data_dir, &["value", "list"]);
    assert_eq!(list["values"][0]["value"]["id"], id.as_str(), "{list}");
    daemon.stop();
}

/// An arbiter server in this process, on its own runtime (the test thread blocks on the CLI).
struct InProcessArbiter {
    runtime: tokio::runtime::Runtime,
    handle: valex_arbiter::server::ArbiterHandle,
    addr: String,
}

impl InProcessArbiter {
    fn start() -> Self {
        use valex_arbiter::server::{ArbiterConfig, MemoryDecisionLog, start};
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mut config = ArbiterConfig::new(valex_proto::crypto::Keypair::from_seed([77; 32]), "cli-test-arbiter");
        // Announce often, so daemons started after it find it through gossipsub quickly too.
        config.announce_interval = Duration::from_secs(1);
        let (handle, addr) = runtime.block_on(async {
            let (handle, _task) = start(config, MemoryDecisionLog::default()).await.unwrap();
            let addrs = tokio::time::timeout(Duration::from_secs(10), handle.listen_addrs()).await.unwrap().unwrap();
            let addr = addrs.into_iter().find(|a| a.to_string().starts_with("/ip4/127.0.0.1/")).expect("a loopback address");
            let addr = format!("{addr}/p2p/{}", handle.peer_id());
            (handle, addr)
        });
        Self { runtime, handle, addr }
    }
}

impl Drop for InProcessArbiter {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ = self.runtime.block_on(async move { tokio::time::timeout(Duration::from_secs(5), handle.shutdown()).await });
    }
}

/// The first loopback listen address of a running daemon, with its `/p2p/` suffix.
/// `valex --json events` running against a daemon, its stdout read line by line on a thread.
struct EventFollower {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl EventFollower {
    /// Starts following; returns once the daemon has subscribed (the CLI says so on stderr), so
    /// no event after this call is missed.
    fn start(data_dir: &Path) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(VALEX)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--json", "events"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run valex events");
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut header = String::new();
        stderr.read_line(&mut header).expect("read valex events' stderr");
        assert!(header.starts_with("following the node's events"), "valex events: {header}");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Every event up to and including the first `session_ended` (bounded by a deadline).
    fn until_session_ended(mut self) -> Vec<Json> {
        let deadline = Instant::now() + START_DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("no session_ended event in time; saw {seen:?}"));
            let event: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let ended = event["kind"] == "session_ended";
            seen.push(event);
            if ended {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return seen;
            }
        }
    }
}

impl Drop for EventFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dial_addr(data_dir: &Path) -> String {
    let info = ok_json(data_dir, &["info"]);
    let addr = info["listen_addrs"].as_array().unwrap().iter().filter_map(Json::as_str).find(|a| a.starts_with("/ip4/127.0.0.1/")).unwrap();
    format!("{addr}/p2p/{}", info["peer_id"].as_str().unwrap())
}

#[test]
fn two_daemons_exchange_values_through_the_cli() {
    let arbiter = InProcessArbiter::start();
    let arbiter_id = arbiter.handle.peer_id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (alice_dir, bob_dir) = (dir.path().join("alice"), dir.path().join("bob"));
    let (alice, bob) = (init(&alice_dir), init(&bob_dir));
    let alice_daemon = Daemon::start(&alice_dir, &["--bootstrap", &arbiter.addr]);
    let bob_daemon = Daemon::start(&bob_dir, &["--bootstrap", &arbiter.addr, "--accept-arbiter", &arbiter_id]);

    let ticket = ok_json(&alice_dir, &["value", "issue", "--kind", "ticket", "--amount", "1", "--payload-hex", "12a0"]);
    let ticket_id = ticket["value"]["id"].as_str().unwrap().to_owned();
    let voucher = ok_json(&bob_dir, &["value", "issue", "--kind", "voucher", "--amount", "5"]);
    let voucher_id = voucher["value"]["id"].as_str().unwrap().to_owned();

    let dialed = ok_json(&alice_dir, &["dial", &dial_addr(&bob_dir)]);
    assert!(dialed["dialed"].as_str().unwrap().contains(&bob), "{dialed}");
    let peers = ok_json(&alice_dir, &["peers"]);
    assert!(peers["peers"].as_array().unwrap().iter().any(|p| p["peer"] == bob.as_str() && p["connected"] == true), "{peers}");

    // Bob follows his node's events while the exchange runs (`valex events`, one JSON per line).
    let bob_events = EventFollower::start(&bob_dir);
    let result = ok_json(
        &alice_dir,
        &["exchange", "--peer", &bob, "--give", &ticket_id, "--want", "voucher:5", "--arbiter", &arbiter_id, "--ttl-ms", "20000"],
    );
    assert_eq!(result["outcome"], "done", "{result}\nalice: {}\nbob: {}", alice_daemon.log(), bob_daemon.log());
    assert_eq!(result["settled_by_arbiter"], false, "{result}");
    assert_eq!(result["received"]["id"], voucher_id.as_str(), "{result}");
    let receipt = &result["receipt"];
    assert_eq!(receipt["terms"]["initiator"], alice.as_str(), "{result}");
    assert_eq!(receipt["terms"]["responder"], bob.as_str(), "{result}");
    assert_eq!(receipt["terms"]["arbiter"], arbiter_id.as_str(), "{result}");
    assert_eq!(receipt["terms"]["v1_id"], ticket_id.as_str(), "{result}");
    assert_eq!(receipt["terms"]["v2_id"], voucher_id.as_str(), "{result}");
    assert_eq!(receipt["evidence"]["r2"].as_str().map(str::len), Some(64), "{result}");

    // Bob saw his side of it as it happened, in order, about this one session.
    let session = result["session"].as_str().unwrap();
    let seen = bob_events.until_session_ended();
    let kinds: Vec<&str> = seen.iter().filter(|e| e["session"] == session).filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["session_started", "session_agreed", "value_received", "value_given", "session_ended"], "{seen:?}");
    let started = seen.iter().find(|e| e["kind"] == "session_started").unwrap();
    assert_eq!((started["role"].as_str(), started["peer"].as_str()), (Some("responder"), Some(alice.as_str())), "{started}");
    let received = seen.iter().find(|e| e["kind"] == "value_received").unwrap();
    assert_eq!(received["value"], ticket_id.as_str(), "bob received the ticket: {received}");
    let ended = seen.iter().find(|e| e["kind"] == "session_ended").unwrap();
    assert_eq!(ended["result"]["outcome"], "done", "{ended}");

    // Swapped: each vault holds the other's value, with its receipt.
    let alice_values = ok_json(&alice_dir, &["value", "list"]);
    let ids: Vec<&str> = alice_values["values"].as_array().unwrap().iter().filter_map(|v| v["value"]["id"].as_str()).collect();
    assert_eq!(ids, [voucher_id.as_str()], "{alice_values}");
    let bob_ticket = ok_json(&bob_dir, &["value", "show", &ticket_id]);
    assert_eq!(bob_ticket["acquired"], "exchange", "{bob_ticket}");
    assert!(bob_ticket["receipt"]["s2"].as_str().is_some_and(|s2| s2.len() == 64), "{bob_ticket}");
    let shown = ok(&alice_dir, &["value", "show", &voucher_id]);
    assert!(shown.contains("receipt:") && shown.contains("r2"), "{shown}");

    for (dir, role) in [(&alice_dir, "initiator"), (&bob_dir, "responder")] {
        let sessions = ok_json(dir, &["sessions"]);
        let list = sessions["sessions"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{sessions}");
        assert_eq!(list[0]["role"], role);
        assert_eq!(list[0]["outcome"], "done");
        assert_eq!(list[0]["id"], result["session"]);
    }

    // Back again, this time with the arbiter picked from the directory (both daemons bootstrapped
    // to it) and the wanted value named by id.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let arbiters = ok_json(&alice_dir, &["arbiters"]);
        if arbiters["arbiters"].as_array().unwrap().iter().any(|a| a["peer"] == arbiter_id.as_str()) {
            assert_eq!(arbiters["arbiters"][0]["name"], "cli-test-arbiter", "{arbiters}");
            break;
        }
        assert!(Instant::now() < deadline, "alice never discovered the arbiter: {}", alice_daemon.log());
        std::thread::sleep(POLL * 4);
    }
    let back = ok_json(&alice_dir, &["exchange", "--peer", &bob, "--give", &voucher_id, "--want", &ticket_id]);
    assert_eq!(back["outcome"], "done", "{back}\nalice: {}\nbob: {}", alice_daemon.log(), bob_daemon.log());
    assert_eq!(back["receipt"]["terms"]["arbiter"], arbiter_id.as_str(), "{back}");
    assert_eq!(ok_json(&alice_dir, &["value", "show", &ticket_id])["acquired"], "exchange");

    // Giving a value we no longer hold is refused with one line.
    let line = fails(&alice_dir, &["exchange", "--peer", &bob, "--give", &voucher_id, "--want", "ticket:1", "--arbiter", &arbiter_id]);
    assert!(line.contains("not available"), "{line}");

    alice_daemon.stop();
    bob_daemon.stop();
}
