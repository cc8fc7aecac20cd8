//! A small HTTP/1.1 load generator for the HTTP benchmarks (PERF-5, PERF-6), and the memory
//! figures of a process (PERF-10).
//!
//! It drives one URL of a server on loopback over keep-alive connections opened with hyper's
//! low-level client (`hyper::client::conn::http1`): no pool, no URL parsing and no header work
//! per request beyond cloning a few prepared values, so that on a two-core machine the generator
//! takes as little as it can of the CPU the server needs. It runs on whatever tokio runtime calls
//! it; the benchmark gives it a current-thread one (one core at most).
//!
//! A [`Target`] is a `GET` with fixed headers ([`Target::new`]), or a `POST` of prepared JSON
//! bodies, each with headers of its own (a cookie), taken in turn, round-robin over every
//! connection of the run ([`Target::post_json`]): each request of the run is a different
//! client's, prepared before the clock starts.
//!
//! - [`closed_loop`]: `N` connections, each sending its next request as soon as the previous
//!   answer is read, for a fixed time after a warm-up: the throughput the server sustains.
//! - [`open_loop`]: requests at a fixed rate whatever the answers (request `i` is due at
//!   `start + i / rate`), spread over enough connections that a slow answer does not hold the
//!   next request back: latency at a given load. Each request's latency is measured from when it
//!   was sent, and also from when it was due ([`LoadReport::latency_from_due`]), which counts any
//!   time it waited for a free connection or for the timer (tokio's timer has a 1 ms grain).
//!
//! Answers other than 2xx (or other than the one status a target expects, see
//! [`Target::expect`]) and transport errors are counted, never silently retried.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::stats::Summary;

/// Why a request could not be made.
#[derive(Debug)]
pub enum LoadError {
    /// Connecting failed.
    Connect(std::io::Error),
    /// The HTTP exchange failed (the connection closed, a malformed answer, ...).
    Http(hyper::Error),
    /// A header value or request that cannot be built.
    Request(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Http(e) => write!(f, "HTTP exchange failed: {e}"),
            Self::Request(e) => write!(f, "bad request: {e}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => Some(e),
            Self::Http(e) => Some(e),
            Self::Request(_) => None,
        }
    }
}

/// One request of a [`Target`] that sends a different one each time: a body and the headers
/// that go with it.
#[derive(Debug, Clone)]
struct Variant {
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// One URL of a server, with the headers every request to it carries.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The path (and query) to request.
    pub path: String,
    method: Method,
    host: HeaderValue,
    authorization: Option<HeaderValue>,
    /// `POST` only: the requests, taken in turn (empty for a `GET`).
    variants: Arc<[Variant]>,
    /// The next variant to send, shared by every clone of the target (every connection).
    next: Arc<AtomicUsize>,
    /// The only status that counts as a success; any 2xx when `None`.
    expect: Option<StatusCode>,
    /// The local addresses connections are opened from, connection `k` from the `k`-th (in
    /// turn); the system's choice when empty.
    sources: Arc<[IpAddr]>,
}

fn header_value(v: String) -> Result<HeaderValue, LoadError> {
    HeaderValue::try_from(v).map_err(|e| LoadError::Request(e.to_string()))
}

impl Target {
    /// `GET path` at `addr` with `Host: host` and, when given, `Authorization: Bearer <token>`.
    ///
    /// # Errors
    ///
    /// When the host or token cannot be a header value.
    pub fn new(addr: SocketAddr, host: &str, path: &str, bearer: Option<&str>) -> Result<Self, LoadError> {
        Ok(Self {
            addr,
            path: path.to_owned(),
            method: Method::GET,
            host: header_value(host.to_owned())?,
            authorization: bearer.map(|t| header_value(format!("Bearer {t}"))).transpose()?,
            variants: Arc::from(Vec::new()),
            next: Arc::new(AtomicUsize::new(0)),
            expect: None,
            sources: Arc::from(Vec::new()),
        })
    }

    /// `POST path` at `addr` with `Host: host` and `Content-Type: application/json`, each
    /// request the next of `requests` (a JSON body and headers of its own, such as a cookie),
    /// round-robin from the first, over every connection that sends this target (and its
    /// clones).
    ///
    /// # Errors
    ///
    /// When `requests` is empty, or a host, header name or value is not valid.
    pub fn post_json(
        addr: SocketAddr,
        host: &str,
        path: &str,
        requests: impl IntoIterator<Item = (String, Vec<(String, String)>)>,
    ) -> Result<Self, LoadError> {
        let variants = requests
            .into_iter()
            .map(|(body, headers)| {
                let headers = headers
                    .into_iter()
                    .map(|(k, v)| {
                        let name = HeaderName::try_from(k).map_err(|e| LoadError::Request(e.to_string()))?;
                        Ok((name, header_value(v)?))
                    })
                    .collect::<Result<Vec<_>, LoadError>>()?;
                Ok(Variant {
                    body: Bytes::from(body),
                    headers,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        if variants.is_empty() {
            return Err(LoadError::Request(
                "a POST target needs at least one request".to_owned(),
            ));
        }
        Ok(Self {
            addr,
            path: path.to_owned(),
            method: Method::POST,
            host: header_value(host.to_owned())?,
            authorization: None,
            variants: Arc::from(variants),
            next: Arc::new(AtomicUsize::new(0)),
            expect: None,
            sources: Arc::from(Vec::new()),
        })
    }

    /// Only answers with `status` count as successes (say `200 OK` where a `202 Accepted` would
    /// mean the server did other work than the one measured); the rest count as failures.
    #[must_use]
    pub fn expect(mut self, status: StatusCode) -> Self {
        self.expect = Some(status);
        self
    }

    /// Opens connection `k` of a run from `sources[k % sources.len()]` (say `127.0.0.2`,
    /// `127.0.0.3`, ... on loopback: the server then sees that many client addresses).
    #[must_use]
    pub fn from_sources(mut self, sources: Vec<IpAddr>) -> Self {
        self.sources = Arc::from(sources);
        self
    }

    /// The local address of connection `k`, if the target names them.
    fn source(&self, k: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[k % self.sources.len()])
    }

    /// Whether an answer with `status` counts as a success.
    #[must_use]
    pub fn accepts(&self, status: StatusCode) -> bool {
        self.expect.map_or_else(|| status.is_success(), |e| e == status)
    }

    /// The number of distinct requests the target takes in turn (1 for a `GET`).
    #[must_use]
    pub fn variants(&self) -> usize {
        self.variants.len().max(1)
    }

    fn request(&self) -> Result<Request<Full<Bytes>>, LoadError> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header(HOST, self.host.clone());
        if let Some(a) = &self.authorization {
            builder = builder.header(AUTHORIZATION, a.clone());
        }
        let body = if self.variants.is_empty() {
            Bytes::new()
        } else {
            let v = &self.variants[self.next.fetch_add(1, Ordering::Relaxed) % self.variants.len()];
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            for (k, value) in &v.headers {
                builder = builder.header(k, value.clone());
            }
            v.body.clone()
        };
        builder
            .body(Full::new(body))
            .map_err(|e| LoadError::Request(e.to_string()))
    }
}

/// A keep-alive HTTP/1.1 connection; its I/O runs in a task of its own on the current runtime.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Opens a connection to `addr` (with `TCP_NODELAY`, as any HTTP client sets it).
    ///
    /// # Errors
    ///
    /// When the connection or the HTTP handshake fails.
    pub async fn open(addr: SocketAddr) -> Result<Self, LoadError> {
        Self::open_from(addr, None).await
    }

    /// Opens a connection to `addr` from the local address `source` (any port), or from the
    /// system's choice when `None`.
    ///
    /// # Errors
    ///
    /// When binding, the connection or the HTTP handshake fails.
    pub async fn open_from(addr: SocketAddr, source: Option<IpAddr>) -> Result<Self, LoadError> {
        let stream = match source {
            None => TcpStream::connect(addr).await.map_err(LoadError::Connect)?,
            Some(ip) => {
                let socket = match ip {
                    IpAddr::V4(_) => TcpSocket::new_v4(),
                    IpAddr::V6(_) => TcpSocket::new_v6(),
                }
                .map_err(LoadError::Connect)?;
                socket.bind(SocketAddr::new(ip, 0)).map_err(LoadError::Connect)?;
                socket.connect(addr).await.map_err(LoadError::Connect)?
            }
        };
        stream.set_nodelay(true).map_err(LoadError::Connect)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(LoadError::Http)?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it; an error
            // here shows up as the next request's error.
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// Sends `request` and reads the whole answer: its status and body.
    ///
    /// # Errors
    ///
    /// When the exchange fails; the connection is then of no further use.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), LoadError> {
        self.sender.ready().await.map_err(LoadError::Http)?;
        let response = self.sender.send_request(request).await.map_err(LoadError::Http)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(LoadError::Http)?
            .to_bytes();
        Ok((status, body))
    }

    /// The next request of `target`: its status and body length.
    ///
    /// # Errors
    ///
    /// As [`Connection::send`].
    pub async fn exchange(&mut self, target: &Target) -> Result<(StatusCode, usize), LoadError> {
        let (status, body) = self.send(target.request()?).await?;
        Ok((status, body.len()))
    }
}

/// The next request of `target` on a connection of its own: status and body.
///
/// # Errors
///
/// When the connection or the exchange fails.
pub async fn once(target: &Target) -> Result<(StatusCode, Bytes), LoadError> {
    let mut conn = Connection::open(target.addr).await?;
    conn.send(target.request()?).await
}

/// `POST` of a JSON body to `path` at `addr` with `Host: host`, on a connection of its own:
/// status and body.
///
/// # Errors
///
/// When the connection or the exchange fails.
pub async fn post_json(
    addr: SocketAddr,
    host: &str,
    path: &str,
    json: String,
) -> Result<(StatusCode, Bytes), LoadError> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(json)))
        .map_err(|e| LoadError::Request(e.to_string()))?;
    let mut conn = Connection::open(addr).await?;
    conn.send(request).await
}

/// What a load run saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadReport {
    /// Connections used.
    pub connections: usize,
    /// The measured window (after the warm-up); the sum of the windows of combined runs.
    pub window: Duration,
    /// 2xx answers (or answers with the status the target expects) completed in the window.
    pub ok: u64,
    /// Other answers completed in the window, by status.
    pub other_statuses: BTreeMap<u16, u64>,
    /// Transport errors in the window (each followed by a new connection).
    pub errors: u64,
    /// Body bytes of the 2xx answers completed in the window.
    pub body_bytes: u64,
    /// Latency of each 2xx answer of the window in seconds, from sending the request to the
    /// last byte of the answer, in no particular order.
    pub latencies: Vec<f64>,
    /// Open loop only: latency of each 2xx answer from when its request was due.
    pub latencies_from_due: Vec<f64>,
    /// Open loop only: requests sent more than 2 ms after they were due.
    pub late_sends: u64,
    /// Exchanges completed over the whole run, warm-up included, whatever their outcome: what
    /// the server's CPU time over the run is divided by.
    pub exchanges: u64,
}

impl LoadReport {
    /// 2xx answers per second over the window.
    #[must_use]
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Answers that were not 2xx, and transport errors.
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.other_statuses.values().sum::<u64>() + self.errors
    }

    /// Percentiles of [`LoadReport::latencies`].
    #[must_use]
    pub fn latency(&self) -> Option<Summary> {
        Summary::of_secs(self.latencies.clone())
    }

    /// Percentiles of [`LoadReport::latencies_from_due`] (open loop only).
    #[must_use]
    pub fn latency_from_due(&self) -> Option<Summary> {
        Summary::of_secs(self.latencies_from_due.clone())
    }

    /// The runs as one: counts and windows added, samples pooled.
    #[must_use]
    pub fn combine<'a>(runs: impl IntoIterator<Item = &'a Self>) -> Self {
        let mut all = Self::default();
        for r in runs {
            all.connections = all.connections.max(r.connections);
            all.window += r.window;
            all.ok += r.ok;
            for (k, v) in &r.other_statuses {
                *all.other_statuses.entry(*k).or_default() += v;
            }
            all.errors += r.errors;
            all.body_bytes += r.body_bytes;
            all.latencies.extend_from_slice(&r.latencies);
            all.latencies_from_due.extend_from_slice(&r.latencies_from_due);
            all.late_sends += r.late_sends;
            all.exchanges += r.exchanges;
        }
        all
    }

    /// Records one exchange's result; `false` when the connection must be replaced.
    fn record(&mut self, target: &Target, result: &Result<(StatusCode, usize), LoadError>, latency: Duration) -> bool {
        self.exchanges += 1;
        match result {
            Ok((status, bytes)) if target.accepts(*status) => {
                self.ok += 1;
                self.body_bytes += *bytes as u64;
                self.latencies.push(latency.as_secs_f64());
                true
            }
            Ok((status, _)) => {
                *self.other_statuses.entry(status.as_u16()).or_default() += 1;
                true
            }
            Err(_) => {
                self.errors += 1;
                false
            }
        }
    }
}

/// The connections' reports as one, over `window`.
async fn join(
    mut set: JoinSet<Result<LoadReport, LoadError>>,
    connections: usize,
    window: Duration,
) -> Result<LoadReport, LoadError> {
    let mut parts = Vec::new();
    while let Some(joined) = set.join_next().await {
        parts.push(joined.map_err(|e| LoadError::Request(format!("a load task failed: {e}")))??);
    }
    let mut all = LoadReport::combine(&parts);
    all.connections = connections;
    all.window = window;
    Ok(all)
}

/// Closed loop: `connections` keep-alive connections each sending `target` back to back for
/// `warmup + window`; what completes in the last `window` is reported.
///
/// # Errors
///
/// When a connection cannot be opened (at the start, or to replace one that failed).
pub async fn closed_loop(
    target: &Target,
    connections: usize,
    warmup: Duration,
    window: Duration,
) -> Result<LoadReport, LoadError> {
    let target = Arc::new(target.clone());
    let start = Instant::now();
    let from = start + warmup;
    let end = from + window;
    let connections = connections.max(1);
    let mut set = JoinSet::new();
    for k in 0..connections {
        let target = Arc::clone(&target);
        set.spawn(async move {
            let mut tally = LoadReport::default();
            let mut conn = Connection::open_from(target.addr, target.source(k)).await?;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = conn.exchange(&target).await;
                let done = Instant::now();
                let alive = if done >= from && done < end {
                    tally.record(&target, &result, done - sent)
                } else {
                    tally.exchanges += 1;
                    result.is_ok()
                };
                if !alive {
                    conn = Connection::open_from(target.addr, target.source(k)).await?;
                }
            }
            Ok(tally)
        });
    }
    join(set, connections, window).await
}

/// Open loop: `target` at `rate` requests per second for `warmup + window`, request `i` due
/// at `start + i / rate`, over `connections` connections (each takes the next request not yet
/// taken, waits until it is due and sends it). Requests due in the last `window` are reported.
/// Use enough connections that all of them being busy at once would mean latencies far above
/// the ones of interest: then no request waits for a connection.
///
/// # Errors
///
/// When a connection cannot be opened.
pub async fn open_loop(
    target: &Target,
    rate: f64,
    connections: usize,
    warmup: Duration,
    window: Duration,
) -> Result<LoadReport, LoadError> {
    let target = Arc::new(target.clone());
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let total = ((warmup + window).as_secs_f64() * rate).ceil() as u64;
    let measured_from = (warmup.as_secs_f64() * rate).ceil() as u64;
    let next = Arc::new(AtomicU64::new(0));
    // Every connection is open before the clock starts.
    let connections = connections.max(1);
    let mut conns = Vec::with_capacity(connections);
    for k in 0..connections {
        conns.push((k, Connection::open_from(target.addr, target.source(k)).await?));
    }
    let start = Instant::now();
    let mut set = JoinSet::new();
    for (k, mut conn) in conns {
        let target = Arc::clone(&target);
        let next = Arc::clone(&next);
        set.spawn(async move {
            let mut tally = LoadReport::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = start + interval.mul_f64(i as f64);
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let result = conn.exchange(&target).await;
                let done = Instant::now();
                let alive = if i >= measured_from {
                    let ok = matches!(&result, Ok((s, _)) if target.accepts(*s));
                    let alive = tally.record(&target, &result, done - sent);
                    if ok {
                        tally.latencies_from_due.push((done - due).as_secs_f64());
                    }
                    if sent - due > Duration::from_millis(2) {
                        tally.late_sends += 1;
                    }
                    alive
                } else {
                    tally.exchanges += 1;
                    result.is_ok()
                };
                if !alive {
                    conn = Connection::open_from(target.addr, target.source(k)).await?;
                }
            }
            Ok(tally)
        });
    }
    join(set, connections, window).await
}

/// A process's resident memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcMemory {
    /// `VmRSS`: resident now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most ever resident ("high water mark"), in KiB.
    pub hwm_kib: u64,
}

impl ProcMemory {
    /// The memory of process `pid`; `None` when it is gone or `/proc` is not Linux's.
    #[must_use]
    pub fn of(pid: u32) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        };
        Some(Self {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }
}

/// The CPU time (user + system, every thread) process `pid` has used so far, from
/// `/proc/<pid>/stat`, in clock ticks of 10 ms (Linux's `USER_HZ` is 100); `None` when it is gone.
#[must_use]
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: fields are counted after it. `utime`
    // and `stime` are fields 14 and 15, the 12th and 13th after the name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// KiB as MiB with one decimal.
#[must_use]
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
