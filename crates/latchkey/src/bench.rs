//! `latchkey bench`: a load generator for Open Payments (GNAP) and OAuth 2.0 authorization
//! servers: Latchkey, or any other server with the same endpoints (Rafiki's `auth`, for one).
//!
//! It signs GNAP requests as a real client does (RFC 9421 Ed25519 and Content-Digest), prepares
//! the tokens and grants a scenario consumes before the timed phase, runs N virtual clients for
//! a duration or a request count, and reports throughput, latency percentiles (p50, p90, p99,
//! max) and errors by status, as text or as one JSON object (`--json`).
//!
//! Scenarios, each request timed from the first byte sent to the last byte received:
//!
//! | scenario | request | prepared before the timed phase |
//! |---|---|---|
//! | `grant` | `POST {url}/`, a non-interactive incoming-payment grant | nothing |
//! | `rotate` | `POST {manage}` | one grant per request |
//! | `revoke` | `DELETE {manage}` | one grant per request |
//! | `cancel` | `DELETE {continue}` | one grant per request |
//! | `introspect` | `POST {private-url}/` | 1,000 tokens, reused round robin |
//! | `oauth-token` | `POST {url}/oauth/token` (`client_credentials`) | nothing |
//! | `oauth-revoke` | `POST {url}/oauth/revoke` | one token per request |
//! | `oauth-introspect` | `POST {url}/oauth/introspect` | 1,000 tokens, round robin |
//! | `lifecycle` | per virtual client, in a loop: grant, 8 introspections, rotate, 8 introspections of the successor, then revoke it or cancel the grant (alternately) | nothing |
//! | `fill` | no requests: inserts `--tokens N` filler grants and tokens into `--database` | |
//!
//! Each virtual client opens its plain-HTTP keep-alive connections (to the origins the
//! scenario's first request goes to) before the clock starts, so the timed requests do not
//! include opening them; `https://` targets share a pooled client and are not opened early.
//! `--timeline FILE` also writes every request sent in the timed phase (its start, latency,
//! operation and outcome) as CSV, to see whether the slow ones came together (a stall) or
//! spread out.
//!
//! Exit status: 0 when every request got its expected answer, 2 when some did not (the report
//! is printed either way), 1 when the run could not start (bad arguments, a failed
//! preparation, a connection that cannot be opened before the clock, a timeline file that
//! cannot be created).

mod fill;
mod gnap;
mod histogram;
mod oauth;
mod pace;
mod transport;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use hyper::body::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gnap::{PreparedGrant, Signer};
use histogram::Histogram;
use oauth::OAuthCreds;
use pace::Pacer;
use transport::{Client, Outgoing};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// GNAP grant requests (non-interactive incoming-payment grants).
    Grant,
    /// GNAP token rotations, one prepared token each.
    Rotate,
    /// GNAP token revocations, one prepared token each.
    Revoke,
    /// GNAP grant cancellations, one prepared grant each.
    Cancel,
    /// GNAP introspection on the private listener.
    Introspect,
    /// OAuth `client_credentials` token requests.
    OauthToken,
    /// OAuth revocations (RFC 7009), one prepared token each.
    OauthRevoke,
    /// OAuth introspection (RFC 7662).
    OauthIntrospect,
    /// A realistic GNAP mix: grant, introspections, rotate, introspections, revoke or cancel.
    Lifecycle,
    /// Not a load: inserts `--tokens N` filler grants and tokens into `--database`.
    Fill,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Grant => "grant",
            Scenario::Rotate => "rotate",
            Scenario::Revoke => "revoke",
            Scenario::Cancel => "cancel",
            Scenario::Introspect => "introspect",
            Scenario::OauthToken => "oauth-token",
            Scenario::OauthRevoke => "oauth-revoke",
            Scenario::OauthIntrospect => "oauth-introspect",
            Scenario::Lifecycle => "lifecycle",
            Scenario::Fill => "fill",
        }
    }

    fn is_oauth(self) -> bool {
        matches!(
            self,
            Scenario::OauthToken | Scenario::OauthRevoke | Scenario::OauthIntrospect
        )
    }
}

/// Options of `latchkey bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The scenario to run.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The server's public URL (grant endpoint `{url}/`, OAuth at `{url}/oauth/...`).
    #[arg(long, env = "PUBLIC_URL")]
    url: Option<String>,
    /// The private listener's URL (GNAP introspection); needed by `introspect`, used by
    /// `lifecycle` when given.
    #[arg(long, env = "PRIVATE_URL")]
    private_url: Option<String>,
    /// Concurrent virtual clients, each with its own keep-alive connection.
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: usize,
    /// Run for this many seconds (default 10 when --requests is not given).
    #[arg(long, short = 'd', conflicts_with = "requests")]
    duration: Option<f64>,
    /// Send exactly this many timed requests.
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Open loop: offer this many requests per second in all, on a fixed timetable, instead
    /// of each virtual client sending its next request as soon as the last one is answered.
    /// Each latency is then counted from the moment its request was due, so time spent
    /// waiting for a free virtual client counts too (no coordinated omission).
    #[arg(long)]
    rate: Option<f64>,
    /// Print one JSON object on stdout instead of the text report.
    #[arg(long)]
    json: bool,
    /// The client's wallet address URL.
    #[arg(long, env = "WALLET_ADDRESS_URL")]
    wallet_address: Option<String>,
    /// The key id of the client's key.
    #[arg(long, env = "KEY_ID")]
    key_id: Option<String>,
    /// The client's Ed25519 private key: a PEM file path, PEM text, or base64 of either.
    #[arg(long, env = "PRIVATE_KEY", hide_env_values = true)]
    private_key: Option<String>,
    /// OAuth client id (oauth-* scenarios).
    #[arg(long, env = "CLIENT_ID")]
    client_id: Option<String>,
    /// OAuth client secret (oauth-* scenarios).
    #[arg(long, env = "CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// How many grants or tokens to prepare for a consuming scenario (rotate, revoke, cancel,
    /// oauth-revoke). Default: --requests, or with --duration an estimate from the rate the
    /// preparation itself reaches.
    #[arg(long)]
    prepare: Option<u64>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// `fill`: the database to fill (sqlite:///path or postgres://...).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database: Option<String>,
    /// `fill`: how many filler grants (each with one token) to insert.
    #[arg(long)]
    tokens: Option<u64>,
    /// Also write every request sent in the timed phase to this file, one CSV line each in
    /// order of start: `start_ms` (from the start of the timed phase: when the request was due
    /// with --rate, when it was sent without), `latency_ms`, `operation`, `ok` (whether it got
    /// its expected answer). Shows when the slow requests happened: together (a stall) or
    /// spread out.
    #[arg(long, value_name = "FILE")]
    timeline: Option<std::path::PathBuf>,
    /// Wait this many seconds between preparing and the timed phase: a way to see whether the
    /// work the preparation left behind on the server (on SQLite, copying its WAL frames back
    /// into the database) shapes the timed phase. Default 0.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    settle: f64,
}

/// Runs a benchmark scenario.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.scenario == Scenario::Fill {
        return run_fill(&args).await;
    }
    let ctx = Arc::new(Ctx::from_args(&args)?);
    // Created now, so that a bad path fails the run before it starts, not after it.
    let timeline_file = match &args.timeline {
        Some(path) => Some((
            std::fs::File::create(path)
                .with_context(|| format!("cannot create the timeline file {}", path.display()))?,
            path,
        )),
        None => None,
    };
    let pool = prepare(&ctx, &args).await?;
    if ctx.pool.set(pool).is_err() {
        bail!("internal: prepared twice");
    }
    if !ctx.settle.is_zero() {
        tokio::time::sleep(ctx.settle).await;
        ctx.note(&format!(
            "settled for {:.1} s; the timed phase starts",
            ctx.settle.as_secs_f64()
        ));
    }
    let (report, timeline) = timed_phase(&ctx).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    if let Some((file, path)) = timeline_file {
        write_timeline(file, timeline)
            .with_context(|| format!("cannot write the timeline file {}", path.display()))?;
    }
    Ok(if report.total.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn run_fill(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let database = args
        .database
        .as_deref()
        .context("fill needs --database (or LATCHKEY_DATABASE_URL)")?;
    let tokens = args.tokens.context("fill needs --tokens N")?;
    let seconds = fill::fill(database, tokens, args.quiet).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"scenario": "fill", "tokens": tokens, "seconds": seconds})
        );
    } else {
        println!("inserted {tokens} grants with one token each in {seconds:.1} s");
    }
    Ok(ExitCode::SUCCESS)
}

/// What a run needs, shared by the virtual clients.
struct Ctx {
    scenario: Scenario,
    url: String,
    private_url: Option<String>,
    concurrency: usize,
    signer: Option<Signer>,
    oauth: Option<OAuthCreds>,
    budget: Budget,
    prepare: Option<u64>,
    timeout: Duration,
    /// `--settle`: the wait between preparing and the timed phase.
    settle: Duration,
    tls: reqwest::Client,
    quiet: bool,
    /// `--timeline`: keep each request's start, latency and outcome.
    keep_timeline: bool,
    /// Set once, after the preparation.
    pool: std::sync::OnceLock<Pool>,
    /// Requests answered so far in the timed phase (for progress lines).
    done: Arc<AtomicU64>,
    /// Requests failed so far in the timed phase.
    failed: Arc<AtomicU64>,
}

/// How long the timed phase lasts, and (open loop) when each request is due.
struct Budget {
    requests: Option<u64>,
    duration: Duration,
    /// Open loop: requests per second offered in all.
    rate: Option<f64>,
    /// Set when the timed phase starts; it ends `duration` later (unless counted by requests).
    started: std::sync::OnceLock<Instant>,
    issued: AtomicU64,
}

/// One claimed request of the timed phase.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Open loop: when the timetable says the request is sent; its latency counts from here.
    due: Option<Instant>,
}

impl Slot {
    /// The instant the request's latency is counted from.
    fn latency_origin(self) -> Instant {
        self.due.unwrap_or_else(Instant::now)
    }
}

impl Budget {
    /// Claims one request, waiting for its turn on an open-loop timetable; `None` once the
    /// count or the time is used up.
    async fn take(&self, pacer: &mut Pacer) -> Option<Slot> {
        let slot = self.claim()?;
        if let Some(due) = slot.due {
            pacer.until(due).await;
        }
        Some(slot)
    }

    /// The claim itself: request number i is due at start + i / rate.
    fn claim(&self) -> Option<Slot> {
        let i = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.requests.is_some_and(|n| i >= n) {
            return None;
        }
        let started = self.started.get();
        let due = match (self.rate, started) {
            (Some(rate), Some(started)) => {
                Some(*started + Duration::from_secs_f64(i as f64 / rate))
            }
            _ => None,
        };
        if self.requests.is_none() {
            let deadline = *started? + self.duration;
            if due.unwrap_or_else(Instant::now) >= deadline {
                return None;
            }
        }
        Some(Slot { due })
    }
}

static EMPTY_POOL: Pool = Pool {
    grants: Vec::new(),
    tokens: Vec::new(),
    next: AtomicUsize::new(0),
    exhausted: AtomicBool::new(false),
};

/// Tokens or grants made before the timed phase.
#[derive(Default)]
struct Pool {
    grants: Vec<PreparedGrant>,
    tokens: Vec<String>,
    next: AtomicUsize,
    exhausted: AtomicBool,
}

impl Pool {
    /// The next unused grant, or `None` when all are used.
    fn take_grant(&self) -> Option<&PreparedGrant> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let g = self.grants.get(i);
        if g.is_none() {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        g
    }

    /// The next unused token, or `None` when all are used.
    fn take_token(&self) -> Option<&str> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let t = self.tokens.get(i).map(String::as_str);
        if t.is_none() {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        t
    }

    /// Tokens reused round robin (introspection).
    fn cycle_token(&self) -> Option<&str> {
        if self.tokens.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.tokens.len();
        Some(&self.tokens[i])
    }
}

fn load_key(text_or_path: &str) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let trimmed = text_or_path.trim();
    let path = std::path::Path::new(trimmed);
    let text = if !trimmed.starts_with("-----") && trimmed.len() < 4096 && path.is_file() {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the private key file {}", path.display()))?
    } else {
        trimmed.to_string()
    };
    latchkey_proto::keys::load_signing_key(&text).context("PRIVATE_KEY is not a usable key")
}

impl Ctx {
    fn from_args(args: &BenchArgs) -> anyhow::Result<Ctx> {
        let url = args
            .url
            .clone()
            .context("--url (or PUBLIC_URL) is required")?
            .trim_end_matches('/')
            .to_string();
        if args.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        if let Some(d) = args.duration {
            if !(d > 0.0 && d.is_finite()) {
                bail!("--duration must be a positive number of seconds");
            }
        }
        if args.requests == Some(0) {
            bail!("--requests must be at least 1");
        }
        if let Some(rate) = args.rate {
            if !(rate > 0.0 && rate.is_finite()) {
                bail!("--rate must be a positive number of requests per second");
            }
        }
        let needs_signer = !args.scenario.is_oauth();
        let signer = if needs_signer {
            let missing = |what: &str, env: &str| {
                anyhow::anyhow!(
                    "the {} scenario signs as a client: give --{what} (or {env}); \
                     `latchkey serve --dev` prints WALLET_ADDRESS_URL, KEY_ID and PRIVATE_KEY",
                    args.scenario.name()
                )
            };
            Some(Signer {
                key: load_key(
                    args.private_key
                        .as_deref()
                        .ok_or_else(|| missing("private-key", "PRIVATE_KEY"))?,
                )?,
                key_id: args
                    .key_id
                    .clone()
                    .ok_or_else(|| missing("key-id", "KEY_ID"))?,
                wallet_address: args
                    .wallet_address
                    .clone()
                    .ok_or_else(|| missing("wallet-address", "WALLET_ADDRESS_URL"))?,
            })
        } else {
            None
        };
        let oauth = if args.scenario.is_oauth() {
            match (&args.client_id, &args.client_secret) {
                (Some(id), Some(secret)) => Some(OAuthCreds {
                    client_id: id.clone(),
                    client_secret: secret.clone(),
                }),
                _ => bail!(
                    "the {} scenario needs OAuth client credentials: --client-id and \
                     --client-secret (or CLIENT_ID and CLIENT_SECRET); make a client with \
                     `latchkey oauth-client create --name bench --database URL`",
                    args.scenario.name()
                ),
            }
        } else {
            None
        };
        let private_url = args
            .private_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_string());
        if args.scenario == Scenario::Introspect && private_url.is_none() {
            bail!("the introspect scenario needs --private-url (or PRIVATE_URL)");
        }
        let timeout = Duration::try_from_secs_f64(args.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .context("--timeout must be a positive number of seconds")?;
        let settle = Duration::try_from_secs_f64(args.settle)
            .ok()
            .context("--settle must be zero or a positive number of seconds")?;
        Ok(Ctx {
            scenario: args.scenario,
            url,
            private_url,
            concurrency: args.concurrency,
            signer,
            oauth,
            budget: Budget {
                requests: args.requests,
                duration: Duration::from_secs_f64(args.duration.unwrap_or(10.0)),
                rate: args.rate,
                started: std::sync::OnceLock::new(),
                issued: AtomicU64::new(0),
            },
            prepare: args.prepare,
            timeout,
            settle,
            tls: transport::tls_client(args.concurrency, timeout)?,
            quiet: args.quiet,
            keep_timeline: args.timeline.is_some(),
            pool: std::sync::OnceLock::new(),
            done: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The prepared pool (empty before the preparation).
    fn pool(&self) -> &Pool {
        self.pool.get().unwrap_or(&EMPTY_POOL)
    }

    fn signer(&self) -> anyhow::Result<&Signer> {
        self.signer.as_ref().context("no client key")
    }

    fn oauth(&self) -> anyhow::Result<&OAuthCreds> {
        self.oauth.as_ref().context("no OAuth client")
    }

    fn client(&self) -> Client {
        Client::new(self.tls.clone(), self.timeout)
    }

    /// Where the scenario's first timed requests go: the connections to open before the
    /// clock. The prepared grants' URLs are the server's (built on its public URL, which may
    /// differ from `--url`).
    fn first_request_urls(&self) -> Vec<String> {
        let first_grant = self.pool().grants.first();
        let urls = match self.scenario {
            Scenario::Introspect => vec![self.private_url.clone()],
            Scenario::Rotate | Scenario::Revoke => vec![first_grant.map(|g| g.manage.clone())],
            Scenario::Cancel => vec![first_grant.map(|g| g.continue_uri.clone())],
            Scenario::Lifecycle => vec![Some(self.url.clone()), self.private_url.clone()],
            Scenario::Grant
            | Scenario::OauthToken
            | Scenario::OauthRevoke
            | Scenario::OauthIntrospect
            | Scenario::Fill => vec![Some(self.url.clone())],
        };
        urls.into_iter().flatten().collect()
    }

    fn grant_endpoint(&self) -> String {
        format!("{}/", self.url)
    }

    fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("bench: {text}");
        }
    }
}

/// Per-operation results of one virtual client.
#[derive(Default, Clone)]
struct OpStats {
    latency: Histogram,
    errors: BTreeMap<String, u64>,
}

/// The operations a scenario sends, for the per-operation breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Grant,
    Rotate,
    Revoke,
    Cancel,
    Introspect,
    OauthToken,
    OauthRevoke,
    OauthIntrospect,
}

impl Op {
    const ALL: [Op; 8] = [
        Op::Grant,
        Op::Rotate,
        Op::Revoke,
        Op::Cancel,
        Op::Introspect,
        Op::OauthToken,
        Op::OauthRevoke,
        Op::OauthIntrospect,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Grant => "grant",
            Op::Rotate => "rotate",
            Op::Revoke => "revoke",
            Op::Cancel => "cancel",
            Op::Introspect => "introspect",
            Op::OauthToken => "oauth-token",
            Op::OauthRevoke => "oauth-revoke",
            Op::OauthIntrospect => "oauth-introspect",
        }
    }

    /// The status a success has.
    fn expected(self) -> u16 {
        match self {
            Op::Revoke | Op::Cancel => 204,
            _ => 200,
        }
    }

    /// Introspection answers must also say `"active":true`.
    fn checks_active(self) -> bool {
        matches!(self, Op::Introspect | Op::OauthIntrospect)
    }
}

/// The results of one virtual client, by operation.
#[derive(Default, Clone)]
struct Stats {
    ops: [OpStats; 8],
    /// `--timeline` only: every request the client sent.
    timeline: Vec<TimelineEntry>,
}

/// One request on the `--timeline`.
#[derive(Debug, Clone, Copy)]
struct TimelineEntry {
    /// When its latency started counting, in µs from the start of the timed phase.
    start_micros: u64,
    /// Its latency in µs, as the histogram recorded it.
    latency_micros: u64,
    /// What it was.
    op: Op,
    /// Whether it got its expected answer.
    ok: bool,
}

impl Stats {
    fn merge(&mut self, other: &Stats) {
        for (a, b) in self.ops.iter_mut().zip(&other.ops) {
            a.latency.merge(&b.latency);
            for (k, v) in &b.errors {
                *a.errors.entry(k.clone()).or_default() += v;
            }
        }
        self.timeline.extend_from_slice(&other.timeline);
    }
}

/// Writes the `--timeline` CSV, in order of start, times in ms to the µs.
fn write_timeline(file: std::fs::File, mut timeline: Vec<TimelineEntry>) -> std::io::Result<()> {
    use std::io::Write;
    timeline.sort_by_key(|t| t.start_micros);
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "start_ms,latency_ms,operation,ok")?;
    for t in &timeline {
        writeln!(
            out,
            "{}.{:03},{}.{:03},{},{}",
            t.start_micros / 1000,
            t.start_micros % 1000,
            t.latency_micros / 1000,
            t.latency_micros % 1000,
            t.op.name(),
            t.ok
        )?;
    }
    out.flush()
}

/// Counts an expected answer whose body could not be read as an error of `op`, on the
/// timeline too.
fn count_bad_body(stats: &mut Stats, op: Op) {
    *stats.ops[op as usize]
        .errors
        .entry("bad-body".into())
        .or_default() += 1;
    if let Some(last) = stats.timeline.last_mut() {
        last.ok = false;
    }
}

/// Sends one request, times it, checks the answer and records the outcome. Returns the body
/// of a success.
async fn exec(
    ctx: &Ctx,
    client: &mut Client,
    stats: &mut Stats,
    op: Op,
    slot: Slot,
    request: Outgoing,
) -> Option<Bytes> {
    let started = slot.latency_origin();
    let result = client.send(request).await;
    let latency_micros = started.elapsed().as_micros() as u64;
    stats.ops[op as usize].latency.record(latency_micros);
    ctx.done.fetch_add(1, Ordering::Relaxed);
    let outcome = match result {
        Ok(r) if r.status == op.expected() => {
            if op.checks_active() && !gnap::is_active(&r.body) {
                Err("inactive".to_string())
            } else {
                Ok(r.body)
            }
        }
        Ok(r) => Err(r.status.to_string()),
        Err(e) if e.is_timeout() => Err("timeout".to_string()),
        Err(_) => Err("transport".to_string()),
    };
    if ctx.keep_timeline {
        let phase = ctx.budget.started.get().copied().unwrap_or(started);
        stats.timeline.push(TimelineEntry {
            start_micros: started.saturating_duration_since(phase).as_micros() as u64,
            latency_micros,
            op,
            ok: outcome.is_ok(),
        });
    }
    match outcome {
        Ok(body) => Some(body),
        Err(error) => {
            ctx.failed.fetch_add(1, Ordering::Relaxed);
            *stats.ops[op as usize].errors.entry(error).or_default() += 1;
            None
        }
    }
}

/// Builds a request or counts the failure to build it as an error.
fn build(
    ctx: &Ctx,
    stats: &mut Stats,
    op: Op,
    request: anyhow::Result<Outgoing>,
) -> Option<Outgoing> {
    match request {
        Ok(r) => Some(r),
        Err(_) => {
            ctx.done.fetch_add(1, Ordering::Relaxed);
            ctx.failed.fetch_add(1, Ordering::Relaxed);
            *stats.ops[op as usize]
                .errors
                .entry("client".into())
                .or_default() += 1;
            None
        }
    }
}

/// Runs `count` preparation jobs on `concurrency` connections, with progress lines.
async fn prepare_many<T, F, Fut>(
    ctx: &Arc<Ctx>,
    what: &str,
    count: u64,
    job: F,
) -> anyhow::Result<(Vec<T>, f64)>
where
    T: Send + 'static,
    F: Fn(Arc<Ctx>, Client) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (Client, anyhow::Result<T>)> + Send,
{
    ctx.note(&format!("preparing {count} {what}"));
    let started = Instant::now();
    let claimed = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..ctx.concurrency.min(count.max(1) as usize) {
        let (ctx, job, claimed, finished) =
            (ctx.clone(), job.clone(), claimed.clone(), finished.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = ctx.client();
            let mut out = Vec::new();
            while claimed.fetch_add(1, Ordering::Relaxed) < count {
                let (c, result) = job(ctx.clone(), client).await;
                client = c;
                out.push(result?);
                finished.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(out)
        }));
    }
    let ticker = progress_ticker(ctx.quiet, format!("preparing {what}"), finished, None);
    let mut all = Vec::with_capacity(count as usize);
    let mut first_error = None;
    for task in tasks {
        match task.await.context("a preparation task failed")? {
            Ok(items) => all.extend(items),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    ticker.abort();
    if let Some(e) = first_error {
        return Err(e.context(format!("preparing {what} failed")));
    }
    let secs = started.elapsed().as_secs_f64();
    ctx.note(&format!(
        "prepared {} {what} in {secs:.1} s ({:.0}/s)",
        all.len(),
        all.len() as f64 / secs.max(1e-9)
    ));
    Ok((all, secs))
}

async fn grant_job(ctx: Arc<Ctx>, mut client: Client) -> (Client, anyhow::Result<PreparedGrant>) {
    let result = async {
        let request = ctx.signer()?.grant_request(&ctx.grant_endpoint())?;
        let response = client.send(request).await?;
        if response.status != 200 {
            bail!(
                "grant request answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        gnap::parse_grant(&response.body)
    }
    .await;
    (client, result)
}

async fn oauth_token_job(ctx: Arc<Ctx>, mut client: Client) -> (Client, anyhow::Result<String>) {
    let result = async {
        let request = ctx.oauth()?.token_request(&ctx.url)?;
        let response = client.send(request).await?;
        if response.status != 200 {
            bail!(
                "token request answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        oauth::parse_token(&response.body)
    }
    .await;
    (client, result)
}

/// How many items a consuming scenario prepares with `--duration`: what the preparation rate
/// suggests the timed phase can use, with a margin. A short first batch measures that rate.
async fn prepare_consumed<T, F, Fut>(ctx: &Arc<Ctx>, what: &str, job: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Arc<Ctx>, Client) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (Client, anyhow::Result<T>)> + Send,
{
    // Open loop for a duration: the requests due before it ends (i / rate < duration), and one
    // spare against rounding.
    let timetabled = ctx
        .budget
        .rate
        .map(|rate| (rate * ctx.budget.duration.as_secs_f64()).ceil() as u64 + 1);
    if let Some(n) = ctx.prepare.or(ctx.budget.requests).or(timetabled) {
        return Ok(prepare_many(ctx, what, n, job).await?.0);
    }
    let probe = (ctx.concurrency as u64 * 50).max(500);
    let (mut items, secs) = prepare_many(ctx, what, probe, job.clone()).await?;
    let rate = items.len() as f64 / secs.max(1e-3);
    let want = (rate * ctx.budget.duration.as_secs_f64() * 1.5).ceil() as u64;
    if want > items.len() as u64 {
        let (more, _) = prepare_many(ctx, what, want - items.len() as u64, job).await?;
        items.extend(more);
    }
    Ok(items)
}

/// Makes what the scenario consumes, before the clock starts.
async fn prepare(ctx: &Arc<Ctx>, args: &BenchArgs) -> anyhow::Result<Pool> {
    let mut pool = Pool::default();
    let cycled = |requests: Option<u64>| requests.unwrap_or(1000).clamp(1, 1000);
    match ctx.scenario {
        Scenario::Rotate | Scenario::Revoke | Scenario::Cancel => {
            pool.grants = prepare_consumed(ctx, "grants", grant_job).await?;
        }
        Scenario::Introspect => {
            let n = args.prepare.unwrap_or(cycled(args.requests));
            pool.tokens = prepare_many(ctx, "grants", n, grant_job)
                .await?
                .0
                .into_iter()
                .map(|g| g.token)
                .collect();
        }
        Scenario::OauthRevoke => {
            pool.tokens = prepare_consumed(ctx, "OAuth tokens", oauth_token_job).await?;
        }
        Scenario::OauthIntrospect => {
            let n = args.prepare.unwrap_or(cycled(args.requests));
            pool.tokens = prepare_many(ctx, "OAuth tokens", n, oauth_token_job)
                .await?
                .0;
        }
        Scenario::Grant | Scenario::OauthToken | Scenario::Lifecycle | Scenario::Fill => {}
    }
    Ok(pool)
}

/// Prints `label: N done, rate, errors` on stderr every second on a terminal, every 5 s
/// otherwise, until aborted.
fn progress_ticker(
    quiet: bool,
    label: String,
    done: Arc<AtomicU64>,
    failed: Option<Arc<AtomicU64>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let every = if std::io::stderr().is_terminal() {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        let started = Instant::now();
        let mut last = 0u64;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            interval.tick().await;
            let now = done.load(Ordering::Relaxed);
            let errors = failed
                .as_ref()
                .map(|f| format!(", {} errors", f.load(Ordering::Relaxed)))
                .unwrap_or_default();
            eprintln!(
                "bench: {label}: {:>5.0} s  {now} done  {:.0}/s now{errors}",
                started.elapsed().as_secs_f64(),
                (now - last) as f64 / every.as_secs_f64()
            );
            last = now;
        }
    })
}

/// One virtual client of the timed phase.
async fn virtual_client(ctx: Arc<Ctx>, index: usize, mut client: Client) -> anyhow::Result<Stats> {
    let mut pacer = Pacer::new();
    let mut stats = Stats::default();
    let c = &*ctx;
    match ctx.scenario {
        Scenario::Grant => {
            let signer = c.signer()?;
            let endpoint = c.grant_endpoint();
            while let Some(slot) = c.budget.take(&mut pacer).await {
                if let Some(r) = build(c, &mut stats, Op::Grant, signer.grant_request(&endpoint)) {
                    exec(c, &mut client, &mut stats, Op::Grant, slot, r).await;
                }
            }
        }
        Scenario::Rotate | Scenario::Revoke | Scenario::Cancel => {
            let signer = c.signer()?;
            while let Some(slot) = c.budget.take(&mut pacer).await {
                let Some(g) = c.pool().take_grant() else {
                    break;
                };
                let (op, request) = match c.scenario {
                    Scenario::Rotate => (Op::Rotate, signer.rotate_request(&g.manage, &g.token)),
                    Scenario::Revoke => (Op::Revoke, signer.revoke_request(&g.manage, &g.token)),
                    _ => (
                        Op::Cancel,
                        signer.cancel_request(&g.continue_uri, &g.continue_token),
                    ),
                };
                if let Some(r) = build(c, &mut stats, op, request) {
                    exec(c, &mut client, &mut stats, op, slot, r).await;
                }
            }
        }
        Scenario::Introspect => {
            let private = c.private_url.as_deref().context("no private URL")?;
            while let Some(slot) = c.budget.take(&mut pacer).await {
                let Some(token) = c.pool().cycle_token() else {
                    break;
                };
                let request = gnap::introspect_request(private, token);
                if let Some(r) = build(c, &mut stats, Op::Introspect, request) {
                    exec(c, &mut client, &mut stats, Op::Introspect, slot, r).await;
                }
            }
        }
        Scenario::OauthToken => {
            let creds = c.oauth()?;
            while let Some(slot) = c.budget.take(&mut pacer).await {
                if let Some(r) = build(c, &mut stats, Op::OauthToken, creds.token_request(&c.url)) {
                    exec(c, &mut client, &mut stats, Op::OauthToken, slot, r).await;
                }
            }
        }
        Scenario::OauthRevoke | Scenario::OauthIntrospect => {
            let creds = c.oauth()?;
            let revoke = c.scenario == Scenario::OauthRevoke;
            while let Some(slot) = c.budget.take(&mut pacer).await {
                let token = if revoke {
                    c.pool().take_token()
                } else {
                    c.pool().cycle_token()
                };
                let Some(token) = token else { break };
                let (op, request) = if revoke {
                    (Op::OauthRevoke, creds.revoke_request(&c.url, token))
                } else {
                    (Op::OauthIntrospect, creds.introspect_request(&c.url, token))
                };
                if let Some(r) = build(c, &mut stats, op, request) {
                    exec(c, &mut client, &mut stats, op, slot, r).await;
                }
            }
        }
        Scenario::Lifecycle => lifecycle(c, &mut client, &mut pacer, &mut stats, index).await?,
        Scenario::Fill => {}
    }
    Ok(stats)
}

/// Introspections a lifecycle client makes per token.
const LIFECYCLE_INTROSPECTIONS: usize = 8;

/// The `lifecycle` loop: a client gets a grant, a resource server checks its token a few
/// times, the client rotates it, the successor is checked, and the client ends it (revoking
/// the token on even rounds, cancelling the whole grant on odd ones).
async fn lifecycle(
    c: &Ctx,
    client: &mut Client,
    pacer: &mut Pacer,
    stats: &mut Stats,
    index: usize,
) -> anyhow::Result<()> {
    let signer = c.signer()?;
    let endpoint = c.grant_endpoint();
    // Virtual clients start on alternate endings, so both are exercised from the start.
    let mut revoke_next = index % 2 == 1;
    loop {
        revoke_next = !revoke_next;
        let Some(slot) = c.budget.take(pacer).await else {
            return Ok(());
        };
        let Some(r) = build(c, stats, Op::Grant, signer.grant_request(&endpoint)) else {
            continue;
        };
        let Some(body) = exec(c, client, stats, Op::Grant, slot, r).await else {
            continue;
        };
        let Ok(grant) = gnap::parse_grant(&body) else {
            count_bad_body(stats, Op::Grant);
            continue;
        };
        if !introspect_some(c, client, pacer, stats, &grant.token).await {
            return Ok(());
        }
        let Some(slot) = c.budget.take(pacer).await else {
            return Ok(());
        };
        let Some(r) = build(
            c,
            stats,
            Op::Rotate,
            signer.rotate_request(&grant.manage, &grant.token),
        ) else {
            continue;
        };
        let Some(body) = exec(c, client, stats, Op::Rotate, slot, r).await else {
            continue;
        };
        let Ok(rotated) = gnap::parse_rotation(&body) else {
            count_bad_body(stats, Op::Rotate);
            continue;
        };
        if !introspect_some(c, client, pacer, stats, &rotated.token).await {
            return Ok(());
        }
        let Some(slot) = c.budget.take(pacer).await else {
            return Ok(());
        };
        let (op, request) = if revoke_next {
            (
                Op::Revoke,
                signer.revoke_request(&rotated.manage, &rotated.token),
            )
        } else {
            (
                Op::Cancel,
                signer.cancel_request(&grant.continue_uri, &grant.continue_token),
            )
        };
        if let Some(r) = build(c, stats, op, request) {
            exec(c, client, stats, op, slot, r).await;
        }
    }
}

/// The resource server's checks of one token; false when the budget ran out.
async fn introspect_some(
    c: &Ctx,
    client: &mut Client,
    pacer: &mut Pacer,
    stats: &mut Stats,
    token: &str,
) -> bool {
    let Some(private) = c.private_url.as_deref() else {
        return true;
    };
    for _ in 0..LIFECYCLE_INTROSPECTIONS {
        let Some(slot) = c.budget.take(pacer).await else {
            return false;
        };
        if let Some(r) = build(
            c,
            stats,
            Op::Introspect,
            gnap::introspect_request(private, token),
        ) {
            exec(c, client, stats, Op::Introspect, slot, r).await;
        }
    }
    true
}

/// Latency summary of a set of requests.
#[derive(Serialize, Debug)]
struct Summary {
    requests: u64,
    errors: u64,
    throughput_per_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    errors_by_status: BTreeMap<String, u64>,
}

fn ms(micros: u64) -> f64 {
    (micros as f64 / 1000.0 * 1000.0).round() / 1000.0
}

fn summarize(latency: &Histogram, errors: &BTreeMap<String, u64>, seconds: f64) -> Summary {
    let requests = latency.len();
    Summary {
        requests,
        errors: errors.values().sum(),
        throughput_per_s: (requests as f64 / seconds.max(1e-9) * 10.0).round() / 10.0,
        p50_ms: ms(latency.quantile(0.50)),
        p90_ms: ms(latency.quantile(0.90)),
        p99_ms: ms(latency.quantile(0.99)),
        max_ms: ms(latency.max()),
        mean_ms: (latency.mean() / 1000.0 * 1000.0).round() / 1000.0,
        errors_by_status: errors.clone(),
    }
}

/// The report of a run (`--json` prints it as is).
#[derive(Serialize, Debug)]
struct Report {
    scenario: &'static str,
    url: String,
    concurrency: usize,
    /// Open loop: the requests per second offered (`--rate`); absent for a closed loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    offered_per_s: Option<f64>,
    duration_s: f64,
    prepared: usize,
    #[serde(flatten)]
    total: Summary,
    /// Per operation, for scenarios that mix several.
    ops: BTreeMap<&'static str, Summary>,
    /// Why the run ended before its budget, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_early: Option<String>,
}

/// Runs the timed phase; returns the report and, with `--timeline`, every request sent.
async fn timed_phase(ctx: &Arc<Ctx>) -> anyhow::Result<(Report, Vec<TimelineEntry>)> {
    // Each virtual client opens its connections before the clock starts, all at once: what
    // is timed is requests on established keep-alive connections.
    let urls = ctx.first_request_urls();
    let mut opening = Vec::with_capacity(ctx.concurrency);
    for _ in 0..ctx.concurrency {
        let (ctx, urls) = (ctx.clone(), urls.clone());
        opening.push(tokio::spawn(async move {
            let mut client = ctx.client();
            for url in &urls {
                client
                    .connect_ahead(url)
                    .await
                    .with_context(|| format!("cannot connect to {url}"))?;
            }
            anyhow::Ok(client)
        }));
    }
    let mut clients = Vec::with_capacity(ctx.concurrency);
    for task in opening {
        clients.push(task.await.context("opening a connection failed")??);
    }
    let started = Instant::now();
    let _ = ctx.budget.started.set(started);
    let ticker = progress_ticker(
        ctx.quiet,
        ctx.scenario.name().into(),
        ctx.done.clone(),
        Some(ctx.failed.clone()),
    );
    let mut tasks = Vec::with_capacity(ctx.concurrency);
    for (i, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(virtual_client(ctx.clone(), i, client)));
    }
    let mut stats = Stats::default();
    for task in tasks {
        stats.merge(&task.await.context("a virtual client failed")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    ticker.abort();
    let timeline = std::mem::take(&mut stats.timeline);
    let mut all = Histogram::default();
    let mut all_errors = BTreeMap::new();
    let mut ops = BTreeMap::new();
    for op in Op::ALL {
        let s = &stats.ops[op as usize];
        if s.latency.len() == 0 && s.errors.is_empty() {
            continue;
        }
        all.merge(&s.latency);
        for (k, v) in &s.errors {
            *all_errors.entry(k.clone()).or_default() += v;
        }
        ops.insert(op.name(), summarize(&s.latency, &s.errors, seconds));
    }
    let stopped_early = ctx.pool().exhausted.load(Ordering::Relaxed).then(|| {
        format!(
            "all {} prepared items were used before the budget ran out; pass --prepare",
            ctx.pool().grants.len().max(ctx.pool().tokens.len())
        )
    });
    let report = Report {
        scenario: ctx.scenario.name(),
        url: ctx.url.clone(),
        concurrency: ctx.concurrency,
        offered_per_s: ctx.budget.rate,
        duration_s: (seconds * 1000.0).round() / 1000.0,
        prepared: ctx.pool().grants.len().max(ctx.pool().tokens.len()),
        total: summarize(&all, &all_errors, seconds),
        ops,
        stopped_early,
    };
    Ok((report, timeline))
}

fn print_text(r: &Report) {
    let t = &r.total;
    println!(
        "{} against {}: {} virtual clients, {} requests in {:.2} s",
        r.scenario, r.url, r.concurrency, t.requests, r.duration_s
    );
    match r.offered_per_s {
        Some(rate) => println!(
            "  throughput  {:.1} requests/s of {rate:.1} offered (open loop; latency counted \
             from when each request was due)",
            t.throughput_per_s
        ),
        None => println!("  throughput  {:.1} requests/s", t.throughput_per_s),
    }
    println!(
        "  latency     p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (mean {:.3} ms)",
        t.p50_ms, t.p90_ms, t.p99_ms, t.max_ms, t.mean_ms
    );
    if t.errors == 0 {
        println!("  errors      0");
    } else {
        let by: Vec<String> = t
            .errors_by_status
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!("  errors      {} ({})", t.errors, by.join(", "));
    }
    if r.ops.len() > 1 {
        println!(
            "  {:<18} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9}",
            "operation", "requests", "errors", "per s", "p50 ms", "p99 ms", "max ms"
        );
        for (name, s) in &r.ops {
            println!(
                "  {:<18} {:>9} {:>7} {:>10.1} {:>9.3} {:>9.3} {:>9.3}",
                name, s.requests, s.errors, s.throughput_per_s, s.p50_ms, s.p99_ms, s.max_ms
            );
        }
    }
    if let Some(why) = &r.stopped_early {
        println!("  stopped early: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(requests: Option<u64>, seconds: u64, rate: Option<f64>) -> Budget {
        Budget {
            requests,
            duration: Duration::from_secs(seconds),
            rate,
            started: std::sync::OnceLock::new(),
            issued: AtomicU64::new(0),
        }
    }

    fn start(b: &Budget) -> Instant {
        let now = Instant::now();
        let _ = b.started.set(now);
        now
    }

    #[test]
    fn request_budget_is_exact() {
        let b = budget(Some(3), 1, None);
        start(&b);
        assert_eq!((0..10).filter(|_| b.claim().is_some()).count(), 3);
    }

    #[test]
    fn duration_budget_needs_a_started_clock() {
        let b = budget(None, 60, None);
        assert!(b.claim().is_none());
        start(&b);
        let slot = b.claim().expect("a slot");
        assert!(slot.due.is_none(), "a closed loop has no timetable");
    }

    #[test]
    fn open_loop_slots_follow_the_timetable() {
        let b = budget(Some(5), 60, Some(100.0));
        let started = start(&b);
        let dues: Vec<Duration> = (0..5)
            .map(|_| b.claim().and_then(|s| s.due).expect("a due slot") - started)
            .collect();
        let expected: Vec<Duration> = (0..5).map(|i| Duration::from_millis(i * 10)).collect();
        assert_eq!(dues, expected);
        assert!(b.claim().is_none(), "the request count still ends the run");
    }

    #[test]
    fn open_loop_duration_ends_with_the_timetable() {
        // 1 s at 10/s: exactly the slots due before the deadline, however fast they are claimed.
        let b = budget(None, 1, Some(10.0));
        start(&b);
        assert_eq!((0..100).filter(|_| b.claim().is_some()).count(), 10);
    }

    #[tokio::test]
    async fn an_open_loop_request_waits_for_its_turn() {
        let b = budget(Some(2), 60, Some(20.0));
        let started = start(&b);
        let mut pacer = Pacer::new();
        b.take(&mut pacer).await.expect("first slot");
        let second = b.take(&mut pacer).await.expect("second slot");
        assert!(Instant::now() >= started + Duration::from_millis(50));
        assert_eq!(second.latency_origin(), started + Duration::from_millis(50));
    }

    #[test]
    fn pools_consume_once_and_cycle() {
        let pool = Pool {
            tokens: vec!["a".into(), "b".into()],
            ..Pool::default()
        };
        assert_eq!(pool.cycle_token(), Some("a"));
        assert_eq!(pool.cycle_token(), Some("b"));
        assert_eq!(pool.cycle_token(), Some("a"));
        let pool = Pool {
            tokens: vec!["a".into()],
            ..Pool::default()
        };
        assert_eq!(pool.take_token(), Some("a"));
        assert_eq!(pool.take_token(), None);
        assert!(pool.exhausted.load(Ordering::Relaxed));
    }
}
