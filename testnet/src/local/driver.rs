//! Drives exchanges through the nodes' control APIs: issues values, then runs the planned
//! exchanges with a bounded number in flight, following each session until it has ended on the
//! initiator's side — across crashes of the initiator (its control API is simply unavailable
//! for a while; the session resumes from its store when it comes back).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::transport::{Channel, Endpoint};
use valex_node::control::pb::control_client::ControlClient;
use valex_node::control::pb::{
    ArbitersRequest, IssueValueRequest, ListValuesRequest, SessionsRequest, StartExchangeRequest, WaitSessionRequest, WantKind,
    start_exchange_request,
};

/// What one planned exchange came to, as the driver saw it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Index in the plan.
    pub index: usize,
    /// Initiator and responder node indexes.
    pub pair: (usize, usize),
    /// The session id, once the initiator accepted the command.
    pub session: Option<String>,
    /// "done", "cancelled", "aborted", or why the driver gave up ("not started: …").
    pub outcome: String,
    /// Whether an arbiter settled it.
    pub settled_by_arbiter: bool,
    /// From the start command to the outcome.
    pub latency: Duration,
}

/// A control client per node, reconnecting lazily (a killed node's calls fail until it is back).
#[derive(Clone)]
pub struct Clients {
    clients: Vec<ControlClient<Channel>>,
}

impl Clients {
    /// Clients for the given control addresses.
    pub fn new(addrs: &[std::net::SocketAddr]) -> Result<Self> {
        let clients = addrs
            .iter()
            .map(|addr| {
                let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(30));
                Ok(ControlClient::new(endpoint.connect_lazy()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { clients })
    }

    /// Node `index`'s client.
    pub fn get(&self, index: usize) -> ControlClient<Channel> {
        self.clients[index % self.clients.len()].clone()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// Waits until every node's directory holds `arbiters` arbiters.
pub async fn await_discovery(clients: &Clients, arbiters: usize, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    for index in 0..clients.len() {
        loop {
            let found = clients.get(index).arbiters(ArbitersRequest {}).await.map(|r| r.into_inner().arbiters.len()).unwrap_or(0);
            if found >= arbiters {
                break;
            }
            if started.elapsed() > timeout {
                bail!("node-{index} found {found} of {arbiters} arbiters within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(started.elapsed())
}

/// Issues `count` values of kind `coin`, amount 1, to every node; returns their ids.
pub async fn issue_values(clients: &Clients, count: usize) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for index in 0..clients.len() {
        for n in 0..count {
            let request = IssueValueRequest { kind: "coin".into(), amount: 1, payload: format!("node-{index} coin {n}").into_bytes() };
            let info =
                clients.get(index).issue_value(request).await.with_context(|| format!("issuing a value at node-{index}"))?.into_inner();
            ids.push(info.value.map(|v| v.id).context("issued value without id")?);
        }
    }
    Ok(ids)
}

/// The exchange plan: which pairs, in order. Deterministic given the seed.
pub fn plan(seed: u64, nodes: usize, exchanges: usize) -> Vec<(usize, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..exchanges)
        .map(|_| {
            let a = rng.gen_range(0..nodes);
            let b = (a + rng.gen_range(1..nodes)) % nodes;
            (a, b)
        })
        .collect()
}

/// Runs the plan with at most `concurrency` exchanges in flight, starting at most `rate` per
/// second (0: as fast as they finish); `on_done` is called after each.
#[allow(clippy::too_many_arguments)]
pub async fn run_exchanges(
    clients: &Clients,
    plan: &[(usize, usize)],
    seed: u64,
    concurrency: usize,
    rate: f64,
    peer_ids: &[String],
    deadline: Instant,
    starts: tokio::sync::broadcast::Sender<(usize, usize)>,
    on_done: impl Fn(&Attempt) + Send + Sync + 'static,
) -> Vec<Attempt> {
    let reserved: Arc<Mutex<HashSet<String>>> = Arc::default();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let on_done = Arc::new(on_done);
    let mut tasks = tokio::task::JoinSet::new();
    let started = tokio::time::Instant::now();
    for (index, &pair) in plan.iter().enumerate() {
        if rate > 0.0 {
            tokio::time::sleep_until(started + Duration::from_secs_f64(index as f64 / rate)).await;
        }
        let Ok(permit) = semaphore.clone().acquire_owned().await else { break };
        let (clients, reserved, on_done, starts) = (clients.clone(), reserved.clone(), on_done.clone(), starts.clone());
        let responder = peer_ids[pair.1].clone();
        tasks.spawn(async move {
            let attempt = one_exchange(&clients, index, pair, responder, seed, &reserved, deadline, &starts).await;
            on_done(&attempt);
            drop(permit);
            attempt
        });
    }
    let mut attempts = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Ok(attempt) = result {
            attempts.push(attempt);
        }
    }
    attempts.sort_by_key(|a| a.index);
    attempts
}

#[allow(clippy::too_many_arguments)]
async fn one_exchange(
    clients: &Clients,
    index: usize,
    pair: (usize, usize),
    responder: String,
    seed: u64,
    reserved: &Mutex<HashSet<String>>,
    deadline: Instant,
    starts: &tokio::sync::broadcast::Sender<(usize, usize)>,
) -> Attempt {
    let started = Instant::now();
    let mut attempt = Attempt { index, pair, session: None, outcome: String::new(), settled_by_arbiter: false, latency: Duration::ZERO };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let client = clients.get(pair.0);

    // Pick a spendable value of the initiator nobody else is offering; retry while it is down.
    let mut give = None;
    while give.is_none() && Instant::now() < deadline {
        match client.clone().list_values(ListValuesRequest {}).await {
            Ok(list) => {
                let mut free: Vec<String> =
                    list.into_inner().values.into_iter().filter(|v| v.locked_by.is_empty()).filter_map(|v| v.value.map(|v| v.id)).collect();
                free.sort();
                let mut reserved = reserved.lock().unwrap_or_else(|e| e.into_inner());
                free.retain(|id| !reserved.contains(id));
                if free.is_empty() {
                    attempt.outcome = "not started: no spendable value".into();
                    attempt.latency = started.elapsed();
                    return attempt;
                }
                let id = free[rng.gen_range(0..free.len())].clone();
                reserved.insert(id.clone());
                give = Some(id);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let Some(give) = give else {
        attempt.outcome = "not started: initiator unavailable".into();
        return attempt;
    };
    let command = StartExchangeRequest {
        peer: responder,
        give: give.clone(),
        want: Some(start_exchange_request::Want::WantKind(WantKind { kind: "coin".into(), amount: 1, issuer: String::new() })),
        arbiter: String::new(),
        ttl_ms: None,
    };
    // A node just restarted may still be down or re-discovering arbiters: retry for a while.
    let retry_until = (Instant::now() + Duration::from_secs(10)).min(deadline);
    // Tell the chaos which pair is about to exchange, so kills land inside exchanges.
    let _ = starts.send(pair);
    let session = loop {
        match client.clone().start_exchange(command.clone()).await {
            Ok(response) => break response.into_inner().session,
            Err(status) if Instant::now() < retry_until && retryable(&status) => tokio::time::sleep(Duration::from_millis(250)).await,
            Err(status) => {
                // Nothing was started. (If the node died after persisting M1, the session resumes
                // on restart and the audit still sees it.)
                attempt.outcome = format!("not started: {}", status.message());
                attempt.latency = started.elapsed();
                reserved.lock().unwrap_or_else(|e| e.into_inner()).remove(&give);
                return attempt;
            }
        }
    };
    attempt.session = Some(session.clone());
    while Instant::now() < deadline {
        match client.clone().wait_session(WaitSessionRequest { session: session.clone(), timeout_ms: 5_000 }).await {
            Ok(result) => {
                let result = result.into_inner();
                if result.outcome != "open" {
                    attempt.outcome = result.outcome;
                    attempt.settled_by_arbiter = result.settled_by_arbiter;
                    break;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    if attempt.outcome.is_empty() {
        attempt.outcome = "open at the deadline".into();
    }
    attempt.latency = started.elapsed();
    reserved.lock().unwrap_or_else(|e| e.into_inner()).remove(&give);
    attempt
}

/// Whether a refused start is worth retrying: the node is down or has not yet found an arbiter.
fn retryable(status: &tonic::Status) -> bool {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => true,
        tonic::Code::FailedPrecondition => status.message().contains("arbiter"),
        _ => false,
    }
}

/// Waits until no node has an open session (bounded); returns how many remain open per node.
pub async fn await_settled(clients: &Clients, timeout: Duration) -> BTreeMap<usize, usize> {
    let started = Instant::now();
    loop {
        let mut open = BTreeMap::new();
        for index in 0..clients.len() {
            let count = match clients.get(index).sessions(SessionsRequest {}).await {
                Ok(list) => list.into_inner().sessions.iter().filter(|s| s.outcome == "open").count(),
                Err(_) => usize::MAX, // not answering: not settled
            };
            if count > 0 {
                open.insert(index, count);
            }
        }
        if open.is_empty() || started.elapsed() > timeout {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
