#!/usr/bin/env python3
"""What one `latchkey bench` run cost, per request (BENCHMARKS.md, round 11).

    SERVER_PID=... [DATABASE_URL=postgres://...] scripts/bench-costs.py BIN SCENARIO [bench args...]

Runs `BIN bench SCENARIO --json [bench args...]` against the server whose environment
(PUBLIC_URL, PRIVATE_URL, WALLET_ADDRESS_URL, KEY_ID, PRIVATE_KEY, CLIENT_ID, CLIENT_SECRET) is
in this process's environment, and prints the bench's figures with, over the timed phase only
(from the generator's `prepared` line to its end), per request:
  srv    CPU of the server process (SERVER_PID)
  pg     CPU of every process named `postgres` on the box
  box    CPU of the whole box (all cores), and the share the host took (`steal`)
  disk   bytes the server caused to be written to storage (/proc/PID/io write_bytes: SQLite's
         WAL frames and checkpoints)
  wal    bytes of PostgreSQL WAL (pg_current_wal_lsn before and after; needs psql and a
         postgres:// DATABASE_URL)
Leave out --quiet (the `prepared` line marks the timed phase; with --settle, the `settled`
line). Scenarios that prepare nothing (grant, oauth-token, lifecycle) print no such line: their
figures count from the start, which holds only the generator's start-up. `steal` is the share
of all CPU time (busy and idle) that the host took. Linux only. Not part of the test suite.
"""
import json
import os
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_cpu():
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{pid}/comm").read().strip() == "postgres":
                total += proc_cpu(pid)
        except OSError:
            pass
    return total


def box_cpu():
    """(CPU time the guest ran, CPU time in all, time the host took), in seconds.

    /proc/stat's first line: user nice system idle iowait irq softirq steal guest guest_nice;
    guest time is already counted in user time, so only the first eight fields add up."""
    values = list(map(int, open("/proc/stat").readline().split()[1:9]))
    total = sum(values)
    ran = total - values[3] - values[4] - values[7]
    return ran / TICK, total / TICK, values[7] / TICK


def written(pid):
    for line in open(f"/proc/{pid}/io"):
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def wal_position():
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return 0
    done = subprocess.run(["psql", "-At", url, "-c", "SELECT pg_current_wal_lsn() - '0/0'"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench-costs: psql failed: {done.stderr.strip()}")
    return int(float(done.stdout.strip()))


def sample(pid):
    return proc_cpu(pid), postgres_cpu(), box_cpu(), written(pid), wal_position()


def main():
    binary, scenario, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    if "--quiet" in extra or "-q" in extra:
        sys.exit("bench-costs: leave out --quiet: the `prepared` line marks the timed phase")
    pid = os.environ["SERVER_PID"]
    bench = subprocess.Popen([binary, "bench", scenario, "--json", *extra],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    before = sample(pid)
    errors = []
    for line in bench.stderr:
        if line.startswith(("bench: prepared ", "bench: settled ")):
            before = sample(pid)
        elif not line.startswith("bench: "):
            errors.append(line)
    out = bench.stdout.read()
    bench.wait()
    after = sample(pid)
    if bench.returncode != 0 or not out.strip():
        sys.exit(f"bench-costs: bench failed ({bench.returncode}): {''.join(errors)}")
    report = json.loads(out)
    n = max(report["requests"], 1)
    (s0, p0, (b0, a0, st0), w0, l0), (s1, p1, (b1, a1, st1), w1, l1) = before, after
    keys = ["scenario", "requests", "errors", "throughput_per_s", "p50_ms", "p90_ms", "p99_ms",
            "max_ms", "errors_by_status"]
    print(json.dumps({k: report.get(k) for k in keys}),
          f"srv {1e6 * (s1 - s0) / n:.0f}us pg {1e6 * (p1 - p0) / n:.0f}us "
          f"box {1e6 * (b1 - b0) / n:.0f}us steal {100 * (st1 - st0) / max(a1 - a0, 1e-9):.1f}% "
          f"disk {(w1 - w0) / n:.0f}B wal {(l1 - l0) / n:.0f}B")


if __name__ == "__main__":
    main()
