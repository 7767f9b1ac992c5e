//! Smoke run of `latchkey bench` (what CI runs; no timing is asserted anywhere): the real binary
//! serves in development mode on ephemeral ports over a temporary SQLite database, and a short
//! run of every scenario must finish with zero errors and a well-formed JSON report.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
/// The budget of each smoke run.
const SHORT: &[&str] = &["--requests", "40"];

/// `latchkey serve --dev` as a child process, killed on drop.
struct Server {
    child: Child,
    vars: HashMap<String, String>,
    database: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = format!("sqlite://{}", dir.path().join("bench.db").display());
        let mut child = Command::new(BIN)
            .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
            .args(["--private-listen", "127.0.0.1:0", "--database", &database])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("LATCHKEY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("latchkey serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut vars = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("a line");
            if line == "READY=1" {
                break;
            }
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
            assert!(Instant::now() < deadline, "the server did not get ready");
        }
        assert!(vars.contains_key("PUBLIC_URL"), "serve printed {vars:?}");
        // Keep reading, so that a later line never meets a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            vars,
            database,
            _dir: dir,
        }
    }

    fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("serve printed no {name}"))
    }

    /// `latchkey bench SCENARIO ARGS` in a clean environment holding only the sandbox
    /// client's wallet address and key.
    fn bench_command(&self, scenario: &str, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(["bench", scenario])
            .args(args)
            .env_clear()
            .env("WALLET_ADDRESS_URL", self.var("WALLET_ADDRESS_URL"))
            .env("KEY_ID", self.var("KEY_ID"))
            .env("PRIVATE_KEY", self.var("PRIVATE_KEY"));
        command
    }

    /// Runs `latchkey bench SCENARIO --json` with the sandbox client's variables and `extra`
    /// arguments (the budget: `--requests N` or `--duration S`); returns the report.
    fn bench(&self, scenario: &str, extra: &[&str], env: &[(&str, &str)]) -> Value {
        let output = self
            .bench_command(scenario, &["--json", "--quiet"])
            .args(["--url", self.var("PUBLIC_URL")])
            .args(["--private-url", self.var("PRIVATE_URL")])
            .args(["--concurrency", "4"])
            .args(extra)
            .envs(env.iter().copied())
            .output()
            .expect("latchkey bench runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "bench {scenario} failed: {}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

fn assert_clean(report: &Value, scenario: &str, requests: u64) {
    assert_eq!(report["scenario"], scenario, "{report}");
    assert_eq!(report["requests"], requests, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    for field in ["throughput_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(report[field].is_number(), "{field} in {report}");
    }
    assert!(
        report["p50_ms"].as_f64() <= report["max_ms"].as_f64(),
        "{report}"
    );
}

#[test]
fn every_scenario_runs_with_zero_errors() {
    let server = Server::start();
    for scenario in [
        "grant",
        "rotate",
        "revoke",
        "cancel",
        "introspect",
        "lifecycle",
    ] {
        let report = server.bench(scenario, SHORT, &[]);
        assert_clean(&report, scenario, 40);
    }
    // Open loop: 40 requests due 200 per second, so the run takes at least 195 ms.
    let report = server.bench("grant", &["--requests", "40", "--rate", "200"], &[]);
    assert_clean(&report, "grant", 40);
    assert_eq!(report["offered_per_s"], 200.0, "{report}");
    assert!(
        report["duration_s"].as_f64().is_some_and(|d| d >= 0.195),
        "the timetable was not kept: {report}"
    );
    // A duration run prepares by estimate and stops on time.
    let report = server.bench("revoke", &["--duration", "1", "--prepare", "200"], &[]);
    assert_eq!(report["errors"], 0, "{report}");

    // OAuth: a client made with the CLI, credentials by the Kopo Kopo snippets' variables.
    let created = Command::new(BIN)
        .args(["oauth-client", "create", "--name", "bench"])
        .args(["--database", &server.database])
        .env("LATCHKEY_LOG", "warn")
        .output()
        .expect("oauth-client create runs");
    assert!(created.status.success(), "{created:?}");
    let client: Value = serde_json::from_slice(&created.stdout).expect("client JSON");
    let id = client["client_id"].as_str().expect("client_id");
    let secret = client["client_secret"].as_str().expect("client_secret");
    for scenario in ["oauth-token", "oauth-revoke", "oauth-introspect"] {
        let report = server.bench(
            scenario,
            SHORT,
            &[("CLIENT_ID", id), ("CLIENT_SECRET", secret)],
        );
        assert_clean(&report, scenario, 40);
    }
}

#[test]
fn missing_credentials_are_explained() {
    let output = Command::new(BIN)
        .args(["bench", "grant", "--url", "http://127.0.0.1:9", "-n", "1"])
        .env_clear()
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WALLET_ADDRESS_URL"), "{stderr}");
    let output = Command::new(BIN)
        .args([
            "bench",
            "oauth-token",
            "--url",
            "http://127.0.0.1:9",
            "-n",
            "1",
        ])
        .env_clear()
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CLIENT_ID"), "{stderr}");
}

/// The `--timeline` CSV: `start_ms,latency_ms,operation,ok`, one line per timed request.
fn read_timeline(path: &std::path::Path) -> Vec<(f64, f64, String, bool)> {
    let text = std::fs::read_to_string(path).expect("the timeline file");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("start_ms,latency_ms,operation,ok"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 4, "{line}");
            (
                fields[0].parse().expect("start_ms"),
                fields[1].parse().expect("latency_ms"),
                fields[2].to_string(),
                fields[3].parse().expect("ok"),
            )
        })
        .collect()
}

#[test]
fn a_timeline_lists_every_timed_request_from_its_due_time() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotate.csv");
    let path_arg = path.to_str().expect("a UTF-8 path");
    // Open loop at 200/s: request i is due at 5·i ms, and its line says so.
    let report = server.bench(
        "rotate",
        &["--requests", "40", "--rate", "200", "--timeline", path_arg],
        &[],
    );
    assert_clean(&report, "rotate", 40);
    let timeline = read_timeline(&path);
    assert_eq!(timeline.len(), 40, "one line per timed request");
    for (i, (start, latency, operation, ok)) in timeline.iter().enumerate() {
        assert!(
            (start - 5.0 * i as f64).abs() < 0.01,
            "request {i} counted from {start} ms, not its due time"
        );
        assert!(*latency > 0.0, "request {i}: latency {latency}");
        assert!(
            *latency <= report["max_ms"].as_f64().expect("max_ms"),
            "request {i}: latency {latency} above the report's maximum"
        );
        assert_eq!(operation, "rotate");
        assert!(ok, "request {i} failed");
    }

    // A scenario of several operations: each line names its own, in order of start.
    let lifecycle = dir.path().join("lifecycle.csv");
    let report = server.bench(
        "lifecycle",
        &[
            "--requests",
            "30",
            "--timeline",
            lifecycle.to_str().expect("a UTF-8 path"),
        ],
        &[],
    );
    assert_eq!(report["errors"], 0, "{report}");
    let timeline = read_timeline(&lifecycle);
    assert_eq!(timeline.len(), 30);
    assert!(
        timeline.windows(2).all(|w| w[0].0 <= w[1].0),
        "lines are in order of start"
    );
    // Closed loop: each request counts from when it was sent, within the timed phase.
    let phase_ms = report["duration_s"].as_f64().expect("duration_s") * 1000.0;
    assert!(
        timeline.iter().all(|t| t.0 >= 0.0 && t.0 <= phase_ms),
        "a start outside the timed phase of {phase_ms} ms"
    );
    let ops = report["ops"].as_object().expect("ops");
    assert!(
        ops.len() >= 2,
        "a lifecycle of 30 requests mixes operations: {report}"
    );
    for (op, summary) in ops {
        let lines = timeline.iter().filter(|t| &t.2 == op).count() as u64;
        assert_eq!(
            Some(lines),
            summary["requests"].as_u64(),
            "{op}: the timeline and the report disagree"
        );
    }
}

#[test]
fn requests_without_their_expected_answer_are_marked_on_the_timeline() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wrong.csv");
    // Introspection sent to the public listener's grant endpoint: never the expected answer.
    let output = server
        .bench_command("introspect", &["--json", "--quiet", "-n", "20", "-c", "2"])
        .args(["--url", server.var("PUBLIC_URL")])
        .args(["--private-url", server.var("PUBLIC_URL")])
        .arg("--timeline")
        .arg(&path)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("a report");
    assert_eq!(report["errors"], 20, "{report}");
    let timeline = read_timeline(&path);
    assert_eq!(timeline.len(), 20);
    assert!(
        timeline.iter().all(|t| !t.3),
        "every request failed, and every line must say so"
    );
}

#[test]
fn an_unreachable_server_is_reported_before_the_clock_starts() {
    let server = Server::start();
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let output = server
        .bench_command("grant", &["--json", "--quiet", "-n", "5", "--url", &url])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to {url}")),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no report for a run that never started"
    );
}

#[test]
fn a_timeline_file_that_cannot_be_created_fails_the_run_before_it_starts() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-folder").join("t.csv");
    let output = server
        .bench_command("rotate", &["--json", "-n", "5"])
        .args(["--url", server.var("PUBLIC_URL")])
        .arg("--timeline")
        .arg(&path)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot create the timeline file"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no report for a run that never started"
    );
    assert!(
        !stderr.contains("preparing"),
        "the run failed only after preparing: {stderr}"
    );
}

#[test]
fn settle_waits_between_preparing_and_the_timed_phase() {
    let server = Server::start();
    let mut child = server
        .bench_command("revoke", &["--json", "-n", "20", "--settle", "0.3"])
        .args(["--url", server.var("PUBLIC_URL")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    // Each progress line is timed as it arrives: the wait must fall between the two lines.
    let mut prepared_at = None;
    let mut settled_at = None;
    let mut stderr = String::new();
    for line in BufReader::new(child.stderr.take().expect("stderr")).lines() {
        let line = line.expect("stderr line");
        if line.starts_with("bench: prepared ") {
            prepared_at = Some(std::time::Instant::now());
        } else if line == "bench: settled for 0.3 s; the timed phase starts" {
            settled_at = Some(std::time::Instant::now());
        }
        stderr.push_str(&line);
        stderr.push('\n');
    }
    let output = child.wait_with_output().expect("finishes");
    assert!(output.status.success(), "{stderr}");
    let prepared_at = prepared_at.expect("a prepared line");
    let settled_at = settled_at.expect("a settled line after it");
    assert!(
        settled_at.duration_since(prepared_at) >= std::time::Duration::from_millis(300),
        "the settled line came {:?} after the prepared one: {stderr}",
        settled_at.duration_since(prepared_at)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("report JSON");
    assert_clean(&report, "revoke", 20);

    let output = server
        .bench_command("grant", &["-n", "1", "--settle=-1"])
        .args(["--url", server.var("PUBLIC_URL")])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--settle must be zero or a positive number of seconds"),
        "{stderr}"
    );
}
