//! Rate limits on what anyone may do without an account: submitting a desk's intake form,
//! asking for a fresh link (from an expired link or the lost-link form), and signing in.
//! Each is counted per client address and, where the form names one, per email address
//! and per link, so that neither one machine nor many machines aiming at one address can
//! flood the desk or make it send emails on their behalf. Beyond a limit the answer is 429
//! with `Retry-After`, a page in the reader's language; nothing is recorded or sent.
//!
//! The counts are governor's (GCRA: a burst of the limit's size, then one more each
//! period / size), kept in this process's memory: with several nodes behind a load
//! balancer each counts what it receives, so the limits hold per node.
//!
//! The client's address is the connection's peer, or, when that peer is one of the
//! configured trusted proxies, the last address of `X-Forwarded-For` that is not a trusted
//! proxy (the rightmost one a client cannot forge).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{AppState, page, text, text_with};

/// A limit as written in the settings: `COUNT/UNIT` (`5/hour`, `30/minute`), or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "`{s}` is not a rate limit: write COUNT/UNIT with a unit of second, minute, hour or day (e.g. `5/hour`), or `off`"
            )
        };
        let (count, unit) = s.trim().split_once('/').ok_or_else(wrong)?;
        let count = count.trim().parse::<NonZeroU32>().map_err(|_| wrong())?;
        let per = match unit.trim() {
            "second" | "s" => Duration::from_secs(1),
            "minute" | "min" => Duration::from_secs(60),
            "hour" | "h" => Duration::from_secs(3600),
            "day" | "d" => Duration::from_secs(86_400),
            _ => return Err(wrong()),
        };
        Ok(Rate { count, per })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "second",
            60 => "minute",
            3600 => "hour",
            _ => "day",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Reads a limit setting: a [`Rate`], or `off` (no limit).
pub fn parse_limit(s: &str) -> Result<Option<Rate>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

/// The limits of a node, as configured (`serve --limit-…`).
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Intake forms submitted, per client address and per email address in the form.
    pub intake: Option<Rate>,
    /// Fresh links asked for, per client address, per link and per email address.
    pub links: Option<Rate>,
    /// Sign-in attempts, per client address (each account has its own delays besides).
    pub login: Option<Rate>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitSettings {
    /// A sponsor submits a request or two a day and asks for a fresh link now and then; a
    /// whole department may sign in from one address in the morning.
    fn default() -> Self {
        let rate = |count, secs| {
            Some(Rate {
                count: NonZeroU32::new(count).expect("a positive count"),
                per: Duration::from_secs(secs),
            })
        };
        LimitSettings {
            intake: rate(5, 3600),
            links: rate(5, 3600),
            login: rate(30, 60),
            trusted_proxies: Vec::new(),
        }
    }
}

impl LimitSettings {
    /// No limit at all (tests that submit many forms from one place).
    pub fn off() -> Self {
        LimitSettings {
            intake: None,
            links: None,
            login: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Which limit a form falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Links,
    Login,
}

/// The counters of a node.
#[derive(Debug)]
pub struct Limits {
    intake: Counter,
    links: Counter,
    login: Counter,
    trusted_proxies: Vec<IpAddr>,
    /// Refusals not yet logged, and when the last log line was written: a flood is logged
    /// once a minute, not once per request (which would flood the logs in turn).
    refused: AtomicU32,
    logged_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Refused until `retry_after` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    pub retry_after: Duration,
}

#[derive(Debug)]
struct Counter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Checks since the keys that recovered their whole burst were last forgotten.
    checks: AtomicU32,
}

impl Counter {
    fn new(rate: Option<Rate>) -> Self {
        let limiter = rate.map(|r| {
            let every = (r.per / r.count.get()).max(Duration::from_nanos(1));
            let quota = Quota::with_period(every)
                .expect("a period above zero")
                .allow_burst(r.count);
            RateLimiter::keyed(quota)
        });
        Counter {
            limiter,
            checks: AtomicU32::new(0),
        }
    }

    /// Counts one attempt under every key; refused when any of them is over its limit.
    fn check(&self, keys: &[String]) -> Result<(), Limited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Memory stays bounded by the keys seen within one burst's recovery.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Err(not_until) = limiter.check_key(key) {
                wait = wait.max(not_until.wait_time_from(DefaultClock::default().now()));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Limited { retry_after: wait })
        }
    }
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Self {
        Limits {
            intake: Counter::new(settings.intake),
            links: Counter::new(settings.links),
            login: Counter::new(settings.login),
            trusted_proxies: settings.trusted_proxies.clone(),
            refused: AtomicU32::new(0),
            logged_at: std::sync::Mutex::new(None),
        }
    }

    /// Notes a refusal, and logs the refusals at most once a minute (the first at once).
    pub(crate) fn refused(&self, route: &str, address: Option<IpAddr>, limited: Limited) {
        let count = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged_at = self
            .logged_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if logged_at.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
            return;
        }
        *logged_at = Some(now);
        let count = count.min(self.refused.swap(0, Ordering::Relaxed));
        drop(logged_at);
        tracing::warn!(
            route,
            client = %address.map_or_else(|| "unknown".to_owned(), |a| a.to_string()),
            retry_after_s = limited.retry_after.as_secs(),
            refused = count,
            "over the rate limit of a public form: 429 (refused is the count since the last such line, at most one a minute)"
        );
    }

    fn counter(&self, class: Class) -> &Counter {
        match class {
            Class::Links => &self.links,
            Class::Login => &self.login,
        }
    }

    /// Counts an attempt of this client address.
    pub(crate) fn client(&self, class: Class, address: Option<IpAddr>) -> Result<(), Limited> {
        self.counter(class).check(&[address_key(address)])
    }

    /// Counts an attempt naming these email addresses (case and spaces aside).
    pub(crate) fn named<'a>(
        &self,
        class: Class,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Limited> {
        self.counter(class).check(&named_keys(names))
    }

    /// Counts a request about to be created from the intake form: one for its client's
    /// address and one for each email address it would write to.
    pub(crate) fn intake<'a>(
        &self,
        address: Option<IpAddr>,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Limited> {
        let mut keys = named_keys(names);
        keys.push(address_key(address));
        self.intake.check(&keys)
    }

    /// Counts a fresh link asked for from this link.
    pub(crate) fn link(&self, token: &str) -> Result<(), Limited> {
        self.links.check(&[format!("l:{token}")])
    }

    /// The client's address: the connection's peer, or behind a trusted proxy the last
    /// forwarded address that is not a trusted proxy.
    pub(crate) fn address(&self, request: &Request) -> Option<IpAddr> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        forwarded(request.headers())
            .into_iter()
            .rev()
            .find(|a| !self.trusted_proxies.contains(a))
            .or(Some(peer))
    }
}

fn address_key(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "a:unknown".to_owned(), |a| format!("a:{a}"))
}

fn named_keys<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    names
        .into_iter()
        .map(|n| format!("n:{}", n.trim().to_lowercase()))
        .filter(|k| k.len() > 2)
        .collect()
}

/// The addresses of every `X-Forwarded-For` header, in order (unreadable entries skipped).
fn forwarded(headers: &HeaderMap) -> Vec<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect()
}

/// The public forms, by their route, and the limit each falls under.
fn class_of(method: &Method, route: &str) -> Option<Class> {
    if method != Method::POST {
        return None;
    }
    match route {
        // The intake form counts the requests it creates, in its handler (`intake`): a
        // sponsor correcting a mistake in the form is not held up.
        "/l/{token}/fresh" | "/follow" => Some(Class::Links),
        "/login" => Some(Class::Login),
        _ => None,
    }
}

/// Middleware: the per-address limit of the public forms, before anything is read.
pub(crate) async fn guard(
    s: std::sync::Arc<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let class = route.as_deref().and_then(|r| class_of(request.method(), r));
    if let Some(class) = class {
        let address = s.limits.address(&request);
        if let Err(limited) = s.limits.client(class, address) {
            s.limits
                .refused(route.as_deref().unwrap_or(""), address, limited);
            return too_many(limited);
        }
    }
    next.run(request).await
}

/// The answer beyond a limit: 429, `Retry-After` in whole seconds, a page saying when.
pub(crate) fn too_many(limited: Limited) -> Response {
    let seconds = limited.retry_after.as_secs() + u64::from(limited.retry_after.subsec_nanos() > 0);
    let heading = text("error-too-many");
    let wait = if seconds >= 120 {
        text_with(
            "error-too-many-minutes",
            &[("minutes", seconds.div_ceil(60).into())],
        )
    } else {
        text_with("error-too-many-seconds", &[("seconds", seconds.into())])
    };
    let data = serde_json::json!({"heading": heading, "message": wait});
    let mut r = page(StatusCode::TOO_MANY_REQUESTS, "error", &heading, &data);
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_written_and_wrong_ones_say_how() {
        let r: Rate = "5/hour".parse().unwrap();
        assert_eq!((r.count.get(), r.per), (5, Duration::from_secs(3600)));
        assert_eq!(r.to_string(), "5/hour");
        assert_eq!(
            parse_limit(" 30 / minute ").unwrap().unwrap().count.get(),
            30
        );
        assert_eq!(parse_limit("off").unwrap(), None);
        for bad in ["5", "0/hour", "five/hour", "5/fortnight", ""] {
            let e = parse_limit(bad).unwrap_err();
            assert!(e.contains("COUNT/UNIT"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_and_others_are_not_held_up() {
        let limits = Limits::new(&LimitSettings {
            intake: Some("3/hour".parse().unwrap()),
            ..LimitSettings::off()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            limits.intake(Some(a), []).unwrap();
        }
        let limited = limits.intake(Some(a), []).unwrap_err();
        // One more every 20 minutes.
        assert!(limited.retry_after > Duration::from_secs(19 * 60));
        assert!(limited.retry_after <= Duration::from_secs(20 * 60));
        limits.intake(Some(b), []).unwrap();
        // Other classes count apart, and are off here.
        for _ in 0..10 {
            limits.client(Class::Login, Some(a)).unwrap();
        }
        // An email address counts whatever its case, from any address.
        for i in 0..3 {
            let c: IpAddr = format!("198.51.100.{i}").parse().unwrap();
            limits.intake(Some(c), ["Porteur@Labo.example"]).unwrap();
        }
        let c: IpAddr = "198.51.100.9".parse().unwrap();
        assert!(limits.intake(Some(c), [" porteur@labo.example"]).is_err());
        limits.intake(Some(c), [""]).unwrap();
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_untrusted_forwarded_address() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let limits = Limits::new(&LimitSettings {
            trusted_proxies: vec![proxy, "10.0.0.2".parse().unwrap()],
            ..LimitSettings::off()
        });
        let request = |peer: &str, forwarded: &[&str]| {
            let mut r = Request::new(axum::body::Body::empty());
            r.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 4000)));
            for f in forwarded {
                r.headers_mut()
                    .append("x-forwarded-for", HeaderValue::from_str(f).unwrap());
            }
            r
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // A client's own header is not believed.
        assert_eq!(
            limits.address(&request("198.51.100.7", &["1.2.3.4"])),
            ip("198.51.100.7")
        );
        // The client forges the leftmost entries; the proxies append the real one.
        assert_eq!(
            limits.address(&request("10.0.0.1", &["1.2.3.4, 203.0.113.9", "10.0.0.2"])),
            ip("203.0.113.9")
        );
        // A trusted proxy without the header is the client.
        assert_eq!(limits.address(&request("10.0.0.1", &[])), ip("10.0.0.1"));
        // No connection information (the router driven in-process): unknown.
        assert_eq!(
            limits.address(&Request::new(axum::body::Body::empty())),
            None
        );
    }
}
