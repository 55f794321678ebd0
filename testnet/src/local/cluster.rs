//! The processes of a local testnet: `valex run` nodes and `valex-arbiter` arbiters on 127.0.0.1,
//! each with its own data directory and fixed ports, so a killed process comes back at the same
//! address with the same identity and database.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tonic::transport::Channel;
use valex_node::control::pb::NodeInfoRequest;
use valex_node::control::pb::control_client::ControlClient;
use valex_proto::crypto::Keypair;

/// Where the `valex` and `valex-arbiter` binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `valex`.
    pub node: PathBuf,
    /// `valex-arbiter`.
    pub arbiter: PathBuf,
}

impl Binaries {
    /// The binaries next to the running executable (cargo puts a workspace's binaries together).
    pub fn beside_current_exe() -> Result<Self> {
        let exe = std::env::current_exe().context("locating valex-testnet")?;
        let dir = exe.parent().context("valex-testnet has no directory")?;
        let found = Self { node: dir.join("valex"), arbiter: dir.join("valex-arbiter") };
        for path in [&found.node, &found.arbiter] {
            if !path.exists() {
                bail!("{} not found: build the workspace's binaries first (cargo build --workspace --bins)", path.display());
            }
        }
        Ok(found)
    }
}

/// A free TCP port on 127.0.0.1 (the OS picks one; it is released for the process to bind).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// What kind of process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `valex run` node.
    Node,
    /// A `valex-arbiter`.
    Arbiter,
}

/// One process of the testnet and how to (re)start it.
#[derive(Debug)]
pub struct Member {
    /// "node-3", "arbiter-1".
    pub name: String,
    /// Node or arbiter.
    pub kind: Kind,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its libp2p port.
    pub p2p_port: u16,
    /// Its control port (nodes only).
    pub control_port: u16,
    /// Its PeerId (base58).
    pub peer_id: String,
    /// The running process, if up.
    child: Option<Child>,
    /// How many times it was started.
    pub starts: u32,
    /// The highest peak resident memory of any of its incarnations, KiB (Linux /proc).
    pub peak_rss_kib: u64,
}

impl Member {
    /// Its multiaddr, with /p2p.
    pub fn multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p_port, self.peer_id)
    }

    /// The control API address.
    pub fn control_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.control_port))
    }

    /// Whether its process is running.
    pub fn is_up(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Reads the process's peak resident memory (VmHWM) into `peak_rss_kib`.
    fn sample_peak_memory(&mut self) {
        let Some(child) = &self.child else { return };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) else { return };
        let peak = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        self.peak_rss_kib = self.peak_rss_kib.max(peak);
    }

    /// SIGKILL: no clean shutdown, whatever the process was doing.
    pub fn kill(&mut self) {
        self.sample_peak_memory();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        self.sample_peak_memory();
        if let Some(mut child) = self.child.take() {
            // SAFETY-free: `kill` the command sends SIGTERM by pid.
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Settings shared by every node process.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Exchange expiry, ms.
    pub ttl_ms: u64,
    /// Retry interval, ms.
    pub retry_ms: u64,
    /// A's grace after expiry before asking the arbiter, ms.
    pub grace_ms: u64,
    /// Longest interval between arbiter retries, ms.
    pub arbiter_retry_max_ms: u64,
}

/// The set of processes.
#[derive(Debug)]
pub struct Cluster {
    binaries: Binaries,
    settings: NodeSettings,
    /// Nodes, then arbiters.
    pub members: Vec<Member>,
    /// Where process logs go.
    log_dir: PathBuf,
}

impl Cluster {
    /// Prepares `nodes` node and `arbiters` arbiter directories under `root` (identities derived
    /// from `seed`, so a run is reproducible), without starting anything.
    pub fn prepare(root: &Path, binaries: Binaries, settings: NodeSettings, nodes: usize, arbiters: usize, seed: u64) -> Result<Self> {
        let log_dir = root.join("logs");
        std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
        let mut members = Vec::new();
        for i in 0..nodes {
            let data_dir = root.join(format!("node-{i}"));
            let status = Command::new(&binaries.node)
                .arg("--data-dir")
                .arg(&data_dir)
                .arg("--json")
                .arg("init")
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running {} init", binaries.node.display()))?;
            if !status.status.success() {
                bail!("valex init for node-{i} failed: {}", String::from_utf8_lossy(&status.stderr).trim());
            }
            let peer_id = parse_peer_id(&status.stdout).with_context(|| format!("reading node-{i}'s peer id"))?;
            members.push(Member {
                name: format!("node-{i}"),
                kind: Kind::Node,
                data_dir,
                p2p_port: free_port()?,
                control_port: free_port()?,
                peer_id,
                child: None,
                starts: 0,
                peak_rss_kib: 0,
            });
        }
        for i in 0..arbiters {
            let data_dir = root.join(format!("arbiter-{i}"));
            std::fs::create_dir_all(&data_dir)?;
            let key = Keypair::from_seed(derive_seed(seed, "arbiter", i));
            write_private(&data_dir.join("arbiter.key"), &hex::encode(key.seed()))?;
            members.push(Member {
                name: format!("arbiter-{i}"),
                kind: Kind::Arbiter,
                data_dir,
                p2p_port: free_port()?,
                control_port: 0,
                peer_id: key.peer_id().to_base58(),
                child: None,
                starts: 0,
                peak_rss_kib: 0,
            });
        }
        Ok(Self { binaries, settings, members, log_dir })
    }

    /// The bootstrap address: the first node.
    pub fn bootstrap(&self) -> Option<String> {
        self.members.first().map(Member::multiaddr)
    }

    /// Starts member `index` (again).
    pub fn start(&mut self, index: usize) -> Result<()> {
        let bootstrap = self.bootstrap();
        let settings = self.settings.clone();
        let binaries = self.binaries.clone();
        let log_dir = self.log_dir.clone();
        let member = self.members.get_mut(index).context("no such member")?;
        if member.is_up() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{}.log", member.name)))
            .with_context(|| format!("opening {}'s log", member.name))?;
        let listen = format!("/ip4/127.0.0.1/tcp/{}", member.p2p_port);
        let mut command = match member.kind {
            Kind::Node => {
                let mut c = Command::new(&binaries.node);
                c.arg("--data-dir").arg(&member.data_dir).arg("--control").arg(member.control_addr().to_string()).arg("run");
                c.arg("--listen").arg(&listen);
                c.arg("--ttl-ms").arg(settings.ttl_ms.to_string());
                c.arg("--retry-ms").arg(settings.retry_ms.to_string());
                c.arg("--grace-ms").arg(settings.grace_ms.to_string());
                c.arg("--arbiter-retry-max-ms").arg(settings.arbiter_retry_max_ms.to_string());
                c
            }
            Kind::Arbiter => {
                let mut c = Command::new(&binaries.arbiter);
                c.arg("--data-dir").arg(&member.data_dir).arg("--listen").arg(&listen).arg("--name").arg(&member.name);
                c.arg("--announce-secs").arg("2");
                c
            }
        };
        if let Some(bootstrap) = bootstrap.filter(|b| *b != member.multiaddr()) {
            command.arg("--bootstrap").arg(bootstrap);
        }
        command.env("RUST_LOG", std::env::var("VALEX_TESTNET_LOG").unwrap_or_else(|_| "info".into()));
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let child = command.spawn().with_context(|| format!("starting {}", member.name))?;
        member.child = Some(child);
        member.starts += 1;
        Ok(())
    }

    /// Waits until node `index`'s control API answers (bounded by `timeout`), and returns a client.
    pub async fn connect(&mut self, index: usize, timeout: Duration) -> Result<ControlClient<Channel>> {
        let member = self.members.get_mut(index).context("no such member")?;
        let addr = format!("http://{}", member.control_addr());
        let deadline = Instant::now() + timeout;
        loop {
            if !member.is_up() {
                bail!("{} exited; see its log", member.name);
            }
            if let Ok(mut client) = ControlClient::connect(addr.clone()).await
                && client.node_info(NodeInfoRequest {}).await.is_ok()
            {
                return Ok(client);
            }
            if Instant::now() >= deadline {
                bail!("{}'s control API did not answer within {timeout:?}", member.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every process cleanly.
    pub fn stop_all(&mut self) {
        for member in &mut self.members {
            member.stop(Duration::from_secs(10));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
    }
}

fn parse_peer_id(stdout: &[u8]) -> Result<String> {
    let json: serde_json::Value = serde_json::from_slice(stdout).context("valex init --json printed no JSON")?;
    json.get("peer_id").and_then(|p| p.as_str()).map(str::to_owned).context("valex init --json printed no peer_id")
}

/// A 32-byte seed derived from the run's seed, a label and an index.
pub fn derive_seed(seed: u64, label: &str, index: usize) -> [u8; 32] {
    valex_proto::Digest::of(format!("valex-testnet/{seed}/{label}/{index}").as_bytes()).0
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
