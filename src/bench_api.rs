//! `guichet bench --api URL[,URL...]`: the benchmark's driver through the HTTP API, as a
//! client of the desk would be, spread over one or several `guichet serve` nodes (each call
//! to the next node, or with `--sticky` each request's calls to the node that took it). Each
//! request is submitted, then its open tasks are completed one after the other (first
//! outcome, sample fields) until it has ended; each answer says where the request stands.
//! The database is only used beforehand, to create the staff accounts and API tokens the
//! driver acts with.
//!
//! The driver is asynchronous, on one thread of its own: each of the `concurrency` clients
//! is a task with one kept-alive HTTP/1.1 connection per node (hyper's client connection),
//! so that the driver, which shares the machine with the node it measures, takes as little
//! of it as a client can (a blocking client with a thread per connection took half a
//! millisecond of CPU per request, a third of what the node itself took).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use guichet_engine::Engine;
use guichet_engine::definitions::model::{Process, RoleSource};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use serde_json::{Value, json};

/// What the driver measured.
#[derive(Debug)]
pub(crate) struct Report {
    pub finished: usize,
    pub calls: usize,
    pub elapsed: Duration,
    /// Per request, submission to end, sorted.
    pub latencies: Vec<Duration>,
}

/// One client of the driver: a kept-alive connection to each node, opened on first use.
struct Client {
    /// The nodes' `host:port`.
    nodes: Arc<Vec<String>>,
    connections: Vec<Option<SendRequest<Full<Bytes>>>>,
}

/// How long one call may take before the driver gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    fn new(nodes: Arc<Vec<String>>) -> Client {
        Client {
            connections: nodes.iter().map(|_| None).collect(),
            nodes,
        }
    }

    /// GETs `path` from a node, or POSTs `body` to it as JSON.
    async fn call(
        &mut self,
        node: usize,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let node = node % self.nodes.len();
        let url = format!("http://{}{path}", self.nodes[node]);
        let exchange = async {
            let host = &self.nodes[node];
            let connection = &mut self.connections[node];
            // A connection the node closed (or that failed) is opened again.
            if connection.as_ref().is_none_or(SendRequest::is_closed) {
                let stream = tokio::net::TcpStream::connect(host.as_str()).await?;
                stream.set_nodelay(true)?;
                let (sender, driver) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await?;
                tokio::spawn(driver);
                *connection = Some(sender);
            }
            let sender = connection.as_mut().context("no connection")?;
            sender.ready().await?;
            let request = hyper::Request::builder()
                .uri(path)
                .header(hyper::header::HOST, host.as_str())
                .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
            let request = match body {
                Some(b) => request
                    .method(hyper::Method::POST)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(b.to_string())))?,
                None => request.method(hyper::Method::GET).body(Full::default())?,
            };
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .with_context(|| format!("{url}: no answer in {CALL_TIMEOUT:?}"))?
            .with_context(|| url.clone())
    }
}

/// Accounts and API tokens for the first member of every role of the desk: (role, token).
pub(crate) async fn tokens(e: &Engine, p: &Process) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut password = [0u8; 16];
    getrandom::fill(&mut password).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let password = hex::encode(password);
    for r in &p.roles {
        if let RoleSource::Members(m) = &r.source
            && let Some(who) = m.first()
        {
            if e.users().await?.iter().all(|u| u.email != *who) {
                e.set_user(who, &password, false).await?;
            }
            out.insert(r.id.clone(), e.create_api_token(who, "bench").await?);
        }
    }
    Ok(out)
}

/// The nodes the driver calls.
#[derive(Debug, Clone)]
pub(crate) struct Nodes {
    /// Base URLs, `http://host:port`.
    pub urls: Vec<String>,
    /// Each request's calls to the node of its submission (else each call to the next).
    pub sticky: bool,
}

/// Drives `requests` requests of `desk` to their end through the API of `nodes`,
/// `concurrency` at a time, on a thread of its own (see the module's comment).
pub(crate) fn drive(
    nodes: Nodes,
    p: &Process,
    tokens: &BTreeMap<String, String>,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let hosts = nodes
        .urls
        .iter()
        .map(|n| {
            n.strip_prefix("http://")
                .map(|h| h.trim_end_matches('/').to_owned())
                .with_context(|| {
                    format!("{n}: the driver speaks plain HTTP: give http://host:port")
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!hosts.is_empty(), "no node to drive");
    let submitter = tokens
        .values()
        .next()
        .context("the desk has no role with a member to act as")?
        .clone();
    let run = Run {
        p: Arc::new(p.clone()),
        tokens: Arc::new(tokens.clone()),
        intake: Arc::new(
            json!({ "fields": guichet_engine::sim::drive::sample_fields(p.start().form()) }),
        ),
        submitter: Arc::new(submitter),
        next: Arc::new(AtomicUsize::new(0)),
        calls: Arc::new(AtomicUsize::new(0)),
        requests,
        sticky: nodes.sticky,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hosts = Arc::new(hosts);
    let began = Instant::now();
    let results: Vec<anyhow::Result<Vec<Duration>>> = runtime.block_on(async {
        let clients: Vec<_> = (0..concurrency.max(1))
            .map(|_| tokio::spawn(run.clone().client(Client::new(hosts.clone()))))
            .collect();
        let mut results = Vec::new();
        for c in clients {
            results.push(
                c.await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a driver task panicked"))),
            );
        }
        results
    });
    let elapsed = began.elapsed();
    let mut latencies = Vec::new();
    for r in results {
        latencies.extend(r?);
    }
    latencies.sort();
    Ok(Report {
        finished: latencies.len(),
        calls: run.calls.load(Ordering::SeqCst),
        elapsed,
        latencies,
    })
}

/// What the driver's clients share.
#[derive(Clone)]
struct Run {
    p: Arc<Process>,
    tokens: Arc<BTreeMap<String, String>>,
    intake: Arc<Value>,
    submitter: Arc<String>,
    /// The next request to drive, and how many calls were made.
    next: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    requests: usize,
    sticky: bool,
}

impl Run {
    /// One client: drives requests one after the other until all are taken; returns each
    /// one's latency, submission to end.
    async fn client(self, mut client: Client) -> anyhow::Result<Vec<Duration>> {
        let (p, submitter) = (&self.p, self.submitter.as_str());
        let mut latencies = Vec::new();
        loop {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            if i >= self.requests {
                return Ok(latencies);
            }
            let start = Instant::now();
            let path = format!("/api/v1/desks/{}/requests", p.name);
            let (status, created) = client.call(i, &path, submitter, Some(&self.intake)).await?;
            self.calls.fetch_add(1, Ordering::Relaxed);
            anyhow::ensure!(status == 201, "submitting: {status} {created}");
            let id = created["id"].as_str().context("no id")?.to_owned();
            // Where the request stands comes with each answer (the submission's, then each
            // completion's): no call just to read it.
            let mut standing = created;
            let mut node = i;
            loop {
                if !self.sticky {
                    node += 1;
                }
                if standing.get("status").is_none() {
                    let path = format!("/api/v1/requests/{id}?history=false");
                    let (status, r) = client.call(node, &path, submitter, None).await?;
                    self.calls.fetch_add(1, Ordering::Relaxed);
                    anyhow::ensure!(status == 200, "reading {id}: {status} {r}");
                    standing = r;
                }
                if standing["status"] != "running" {
                    break;
                }
                let t = standing["open_tasks"].get(0).cloned().with_context(|| {
                    format!("{id} waits for something else than a task: the HTTP driver only completes tasks")
                })?;
                let step = p
                    .step(t["step"].as_str().unwrap_or_default())
                    .context("unknown step")?;
                let token = self
                    .tokens
                    .get(t["role"].as_str().unwrap_or_default())
                    .context("a role without a member")?;
                let body = json!({
                    "outcome": step.outcomes().first().map(|o| o.id.clone()),
                    "fields": guichet_engine::sim::drive::sample_fields(step.form()),
                });
                let path = format!("/api/v1/tasks/{id}/{}/complete", t["task"]);
                let (status, answer) = client.call(node, &path, token, Some(&body)).await?;
                self.calls.fetch_add(1, Ordering::Relaxed);
                anyhow::ensure!(status == 200, "{path}: {status} {answer}");
                standing = answer["request"].clone();
            }
            latencies.push(start.elapsed());
        }
    }
}
