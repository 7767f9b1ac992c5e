#!/usr/bin/env python3
"""How long this machine's disk takes to sync, with nothing of Latchkey in the way (BENCHMARKS.md,
round 16).

    scripts/sync-stall-probe.py SECONDS RATE [BYTES] [--csv FILE] [--dir DIR]

Writes BYTES (4096 by default) to a scratch file of its own in DIR (the current directory by
default) and `fsync`s it, RATE times a second on a fixed timetable, for SECONDS; then prints the
number of syncs, their median, p99 and longest, how many took over 5, 20 and 50 ms, and when
(seconds from the start) each sync over 20 ms began. With --csv it also writes every sync's start
(Unix time, seconds) and duration (ms), to line up with `latchkey bench --timeline`. Run it beside
a bench run to tell the server's own tail from the disk's: a durable commit waits for its sync, so
a sync the disk holds for 100 ms holds every commit behind it. Linux or any POSIX system; not part
of the test suite.
"""
import argparse
import os
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seconds", type=float)
    parser.add_argument("rate", type=float, help="syncs per second")
    parser.add_argument("bytes", type=int, nargs="?", default=4096, help="bytes written per sync")
    parser.add_argument("--csv", help="write each sync's start and duration here")
    parser.add_argument("--dir", default=".", help="where the scratch file goes")
    args = parser.parse_args()
    if not (args.seconds > 0 and args.rate > 0 and args.bytes > 0):
        parser.error("SECONDS, RATE and BYTES must be positive")

    path = os.path.join(args.dir, f"sync-stall-probe.{os.getpid()}")
    slots = max(1, (16 << 20) // args.bytes)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.pwrite(fd, bytes(slots * args.bytes), 0)  # the file's size stays put from here on
        os.fsync(fd)
        block = os.urandom(args.bytes)
        syncs = []  # (Unix time the sync began, ms it took)
        start, unix_start, sent = time.perf_counter(), time.time(), 0
        while True:
            now = time.perf_counter()
            if now - start >= args.seconds:
                break
            due = start + sent / args.rate
            if due > now:
                time.sleep(due - now)
            os.pwrite(fd, block, (sent % slots) * args.bytes)
            sent += 1
            began = time.perf_counter()
            os.fsync(fd)
            syncs.append((unix_start + began - start, (time.perf_counter() - began) * 1e3))
    finally:
        os.close(fd)
        os.unlink(path)

    took = sorted(ms for _, ms in syncs)
    n = len(took)
    if n == 0:
        raise SystemExit("sync-stall-probe: no sync fitted in the time given")
    print(f"syncs {n} ({n / args.seconds:.0f}/s of {args.bytes} B): median {took[n // 2]:.3f} ms, "
          f"p99 {took[min(n - 1, int(n * 0.99))]:.3f} ms, longest {took[-1]:.1f} ms; "
          f"over 5 ms {sum(ms > 5 for ms in took)}, over 20 ms {sum(ms > 20 for ms in took)}, "
          f"over 50 ms {sum(ms > 50 for ms in took)}")
    slow = [f"{at - unix_start:.2f}s:{ms:.0f}ms" for at, ms in syncs if ms > 20]
    print("over 20 ms at:", " ".join(slow) if slow else "none")
    if args.csv:
        with open(args.csv, "w") as out:
            out.write("unix_s,sync_ms\n")
            out.writelines(f"{at:.6f},{ms:.3f}\n" for at, ms in syncs)


if __name__ == "__main__":
    main()
