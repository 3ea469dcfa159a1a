#!/usr/bin/env python3
"""Runs every test binary of the workspace, several at a time, then the doc tests.

`cargo test --workspace` runs its test binaries one after another. Most of moip's are
end-to-end tests that spend their time waiting on Lightning and Nostr timers (gossip,
announcements, invoice expiry), not on the CPU: the suite's ~11 minutes of tests used about
a minute of CPU. Running a few binaries side by side keeps the cores busy and the suite short.

Each binary runs as cargo would run it: from its package's directory, with cargo's
`CARGO_MANIFEST_DIR`/`CARGO_PKG_NAME`, and the arguments given to this script (e.g.
`--include-ignored`). Its output is printed whole when it ends, so outputs never interleave.
The longest binaries of the last run (kept in target/test-times.json) start first.

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
    try:
        with open(times_file, encoding="utf-8") as f:
            last_times = json.load(f)
    except (OSError, ValueError):
        last_times = {}

    selection = [f"--package={p}" for p in options.package] or ["--workspace"]
    binaries = test_binaries(packages, selection)
    binaries.sort(key=lambda b: -last_times.get(b["name"], 60.0))
    print(f"running {len(binaries)} test binaries, {options.jobs} at a time", flush=True)

    printing = threading.Lock()
    times = {}
    failed = []

    def run(binary):
        env = dict(os.environ)
        env["CARGO_MANIFEST_DIR"] = binary["dir"]
        env["CARGO_PKG_NAME"] = binary["package"]
        started = time.monotonic()
        result = subprocess.run(
            [binary["executable"], *options.args],
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
            print(f"\n     Running {binary['src']} ({binary['executable']})")
            print(result.stdout, end="")
            print(f"---- {binary['name']}: {verdict} in {took:.1f} s", flush=True)
            if result.returncode != 0:
                failed.append(binary["name"])

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        for future in [pool.submit(run, b) for b in binaries]:
            future.result()
    wall = time.monotonic() - started

    last_times.update(times)
    try:
        with open(times_file, "w", encoding="utf-8") as f:
            json.dump(last_times, f, indent=1, sort_keys=True)
    except OSError as e:
        print(f"could not keep the test times: {e}", file=sys.stderr)

    print(f"\n{len(binaries)} test binaries in {wall:.0f} s ({sum(times.values()):.0f} s one after another)")
    doc = subprocess.run([CARGO, "test", *selection, "--doc"], check=False)
    if doc.returncode != 0:
        failed.append("doc tests")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
    print("\nevery test passed")


if __name__ == "__main__":
    main()
