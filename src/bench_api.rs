//! `guichet bench --api URL[,URL...]`: the benchmark's driver through the HTTP API, as a
//! client of the desk would be, spread over one or several `guichet serve` nodes. Each
//! request is submitted, then its open tasks are completed one after the other (first
//! outcome, sample fields) until it has ended; each answer says where the request stands. The database is only used beforehand, to create the staff
//! accounts and API tokens the driver acts with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use guichet_engine::Engine;
use guichet_engine::definitions::model::{Process, RoleSource};
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

struct Client {
    agent: ureq::Agent,
    nodes: Vec<String>,
}

impl Client {
    /// GETs `path` from a node, or POSTs `body` to it as JSON.
    fn call(
        &self,
        node: usize,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.nodes[node % self.nodes.len()]);
        let auth = format!("Bearer {token}");
        let response = match body {
            Some(b) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string().as_bytes()),
            None => self.agent.get(&url).header("Authorization", &auth).call(),
        }
        .with_context(|| url.clone())?;
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// Accounts and API tokens for the first member of every role of the desk: (role, token).
pub(crate) async fn tokens(e: &Engine, p: &Process) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut password = [0u8; 16];
    getrandom::fill(&mut password).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let password = guichet_engine::hex(&password);
    for r in &p.roles {
        if let RoleSource::Members(m) = &r.source
            && let Some(who) = m.first()
        {
            if e.users().await?.iter().all(|(u, _)| u != who) {
                e.set_user(who, &password, false).await?;
            }
            out.insert(r.id.clone(), e.create_api_token(who, "bench").await?);
        }
    }
    Ok(out)
}

/// Drives `requests` requests of `desk` to their end through the API of `nodes`, `concurrency`
/// at a time (each on its own thread, blocking HTTP).
pub(crate) fn drive(
    nodes: Vec<String>,
    p: &Process,
    tokens: &BTreeMap<String, String>,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        // One kept-alive connection per driver thread and node (ureq keeps 3 per host by
        // default: the others would reconnect for every call, as no peer's client does).
        .max_idle_connections(concurrency.max(1) * nodes.len().max(1))
        .max_idle_connections_per_host(concurrency.max(1))
        .build()
        .into();
    let client = Arc::new(Client { agent, nodes });
    let intake = json!({ "fields": guichet_engine::drive::sample_fields(p.start().form()) });
    let submitter = tokens
        .values()
        .next()
        .context("the desk has no role with a member to act as")?
        .clone();
    let next = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let results: Vec<anyhow::Result<Vec<Duration>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                let (client, next, calls, intake, submitter) =
                    (client.clone(), next.clone(), calls.clone(), intake.clone(), submitter.clone());
                scope.spawn(move || -> anyhow::Result<Vec<Duration>> {
                    let mut latencies = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= requests {
                            return Ok(latencies);
                        }
                        let start = Instant::now();
                        let desk = &p.name;
                        let (status, created) = client.call(i, &format!("/api/v1/desks/{desk}/requests"), &submitter, Some(&intake))?;
                        calls.fetch_add(1, Ordering::Relaxed);
                        anyhow::ensure!(status == 201, "submitting: {status} {created}");
                        let id = created["id"].as_str().context("no id")?.to_owned();
                        // Where the request stands comes with each answer (the submission's,
                        // then each completion's): no call just to read it.
                        let mut standing = created;
                        let mut node = i;
                        loop {
                            node += 1;
                            if standing.get("status").is_none() {
                                let (status, r) = client.call(node, &format!("/api/v1/requests/{id}?history=false"), &submitter, None)?;
                                calls.fetch_add(1, Ordering::Relaxed);
                                anyhow::ensure!(status == 200, "reading {id}: {status} {r}");
                                standing = r;
                            }
                            if standing["status"] != "running" {
                                break;
                            }
                            let t = standing["open_tasks"].get(0).cloned().with_context(|| format!("{id} waits for something else than a task: the HTTP driver only completes tasks"))?;
                            let step = p.step(t["step"].as_str().unwrap_or_default()).context("unknown step")?;
                            let token = tokens.get(t["role"].as_str().unwrap_or_default()).context("a role without a member")?;
                            let body = json!({
                                "outcome": step.outcomes().first().map(|o| o.id.clone()),
                                "fields": guichet_engine::drive::sample_fields(step.form()),
                            });
                            let path = format!("/api/v1/tasks/{id}/{}/complete", t["task"]);
                            let (status, answer) = client.call(node, &path, token, Some(&body))?;
                            calls.fetch_add(1, Ordering::Relaxed);
                            anyhow::ensure!(status == 200, "{path}: {status} {answer}");
                            standing = answer["request"].clone();
                        }
                        latencies.push(start.elapsed());
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a driver thread panicked")))
            })
            .collect()
    });
    let mut latencies = Vec::new();
    for r in results {
        latencies.extend(r?);
    }
    latencies.sort();
    Ok(Report {
        finished: latencies.len(),
        calls: calls.load(Ordering::SeqCst),
        elapsed: began.elapsed(),
        latencies,
    })
}
