#!/usr/bin/env python3
"""Runs every test binary of the workspace, several at a time, then the doc tests.

`cargo test --workspace` runs its test binaries one after another. Most of moip's are
end-to-end tests that spend their time waiting on Lightning and Nostr timers (gossip,
announcements, invoice expiry), not on the CPU (Lightning's payments test: 95 s, under 2 s of
CPU). Running a few binaries side by side keeps the cores busy and the suite short.

Each binary runs as cargo would run it: from its package's directory, with cargo's
`CARGO_MANIFEST_DIR`/`CARGO_PKG_NAME`, and the arguments given to this script (e.g.
`--include-ignored`). Its output is printed whole when it ends, so outputs never interleave.
The longest binaries of the last run (kept in target/test-times.json; on a fresh clone,
those of contrib/test-times.json) start first, and a binary of many tests is split into
several jobs (`--exact` lists of its tests) so it does not finish long after the rest.

Usage: contrib/run-tests.py [--jobs N] [-p PACKAGE]... [-- ARGS FOR EVERY TEST BINARY]
The number of binaries at a time is --jobs, else MOIP_TEST_JOBS, else 3.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time

CARGO = os.environ.get("CARGO", "cargo")

# A binary with more tests than this runs as several jobs.
SHARD_SIZE = 6


def test_binaries(packages, selection):
    """Builds the test binaries (a no-op when `cargo build --tests` just ran) and lists them."""
    build = subprocess.run(
        [CARGO, "test", *selection, "--no-run", "--message-format=json-render-diagnostics"],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        sys.exit(f"building the tests failed ({build.returncode})")
    binaries = []
    for line in build.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") != "compiler-artifact":
            continue
        if not message["profile"]["test"] or not message.get("executable"):
            continue
        target = message["target"]
        manifest_dir = os.path.dirname(message["manifest_path"])
        name = f"{os.path.basename(manifest_dir)}:{target['name']}"
        if "lib" in target["kind"] or "rlib" in target["kind"]:
            name = f"{os.path.basename(manifest_dir)}:unit"
        binaries.append(
            {
                "name": name,
                "executable": message["executable"],
                "src": target["src_path"],
                "dir": manifest_dir,
                "package": packages.get(message["manifest_path"], ""),
            }
        )
    return binaries


def shards(binary):
    """`binary` as jobs of at most SHARD_SIZE tests each (integration tests only), so that a binary of many slow tests
    (the attack tests) does not run alone long after the others have finished. Tests of one
    binary share no process state (each makes its own directories, ports and nodes), so they
    may run in separate processes."""
    if binary["name"].endswith(":unit"):
        # Unit tests take a second in all.
        return [dict(binary, tests=[], shard=None)]
    listing = subprocess.run(
        [binary["executable"], "--list", "--format", "terse"],
        cwd=binary["dir"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=False,
    )
    tests = [
        line[: -len(": test")] for line in listing.stdout.splitlines() if line.endswith(": test")
    ]
    if listing.returncode != 0 or len(tests) <= SHARD_SIZE:
        return [dict(binary, tests=tests, shard=None)]
    count = (len(tests) + SHARD_SIZE - 1) // SHARD_SIZE
    return [
        dict(
            binary,
            name=f"{binary['name']}#{i + 1}",
            tests=tests[i::count],
            shard=f"part {i + 1} of {count}",
        )
        for i in range(count)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MOIP_TEST_JOBS", "3")))
    parser.add_argument("-p", "--package", action="append", default=[],
                        help="only this package's tests (default: the whole workspace)")
    parser.add_argument("args", nargs="*", help="passed to every test binary")
    options = parser.parse_args()

    root = subprocess.run(
        [CARGO, "metadata", "--format-version=1", "--no-deps"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    metadata = json.loads(root.stdout)
    target_dir = metadata["target_directory"]
    packages = {p["manifest_path"]: p["name"] for p in metadata["packages"]}
    times_file = os.path.join(target_dir, "test-times.json")
    last_times = {}
    # This machine's last run, else the times of a run committed beside this script (the
    # binaries of 5 s or more in a full run on the 2-core machine of docs/benchmarks.md).
    for known in [os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-times.json"),
                  times_file]:
        try:
            with open(known, encoding="utf-8") as f:
                last_times.update(json.load(f))
        except (OSError, ValueError):
            pass

    selection = [f"--package={p}" for p in options.package] or ["--workspace"]
    binaries = test_binaries(packages, selection)
    jobs = [job for binary in binaries for job in shards(binary)]
    jobs.sort(key=lambda j: -last_times.get(j["name"], 5.0 * len(j["tests"] or [0])))
    print(
        f"running {len(binaries)} test binaries as {len(jobs)} jobs, {options.jobs} at a time",
        flush=True,
    )

    printing = threading.Lock()
    times = {}
    failed = []

    def run(binary):
        env = dict(os.environ)
        env["CARGO_MANIFEST_DIR"] = binary["dir"]
        env["CARGO_PKG_NAME"] = binary["package"]
        started = time.monotonic()
        only = ["--exact", *binary["tests"]] if binary["shard"] else []
        result = subprocess.run(
            [binary["executable"], *only, *options.args],
            cwd=binary["dir"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
        took = time.monotonic() - started
        with printing:
            times[binary["name"]] = round(took, 1)
            verdict = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
            shard = f" [{binary['shard']}]" if binary["shard"] else ""
            print(f"\n     Running {binary['src']} ({binary['executable']}){shard}")
            print(result.stdout, end="")
            print(f"---- {binary['name']}: {verdict} in {took:.1f} s", flush=True)
            if result.returncode != 0:
                failed.append(binary["name"])

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        for future in [pool.submit(run, j) for j in jobs]:
            future.result()
    wall = time.monotonic() - started

    last_times = {}
    try:
        with open(times_file, encoding="utf-8") as f:
            last_times = json.load(f)
    except (OSError, ValueError):
        pass
    last_times.update(times)
    try:
        with open(times_file, "w", encoding="utf-8") as f:
            json.dump(last_times, f, indent=1, sort_keys=True)
    except OSError as e:
        print(f"could not keep the test times: {e}", file=sys.stderr)

    print(
        f"\n{len(binaries)} test binaries ({len(jobs)} jobs) in {wall:.0f} s"
        f" ({sum(times.values()):.0f} s one after another)"
    )
    doc = subprocess.run([CARGO, "test", *selection, "--doc"], check=False)
    if doc.returncode != 0:
        failed.append("doc tests")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
    print("\nevery test passed")


if __name__ == "__main__":
    main()
