"""Serving under load: dynamic batching against one request at a time (the anchor).

    python benchmarks/serve_load.py [--clients 16] [--seconds 20] [--new-tokens 32]

Compiles the demo plan (the Makefile's `demo` target: the production config
shrunk by DEMO_SET), then starts `capibara serve` on 127.0.0.1 twice, one
after the other: with batching up to the client count, and with
`max_batch_size = 1`. Each gets the same closed-loop load: N clients, each
sending its next `/v1/generate` request (a random prompt of 8 to 24 tokens)
as soon as the last one is answered, for a fixed time. Prints, for each,
requests, errors, generated tokens per second, p50/p99 latency and the
serving-time compilations, then the throughput ratio. Loopback only; each
run stops by itself and the servers are stopped with SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def demo_set() -> list[str]:
    """The Makefile's DEMO_SET, read from the Makefile so the two never disagree."""
    text = (ROOT / "Makefile").read_text()
    found = re.search(r"^DEMO_SET := (.*?)(?<!\\)\n", text, re.MULTILINE | re.DOTALL)
    return shlex.split(found.group(1).replace("\\\n", " "))


def compile_demo(directory: Path) -> Path:
    plan = directory / "demo.plan.json"
    subprocess.run([sys.executable, "-m", "capibara", "compile", "configs/production/tpu_v4.toml",
                    "--target", "auto", *demo_set(), "-o", str(plan)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return plan


def start(plan: Path, max_batch: int, buckets: str, lengths: str,
          chunk_tokens: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "capibara", "serve", str(plan), "--port", "0",
               "--set", "enterprise.output_filtering=false",
               "--set", "enterprise.content_safety_check=false",
               "--set", "enterprise.monitoring_enabled=true",
               "--set", "enterprise.audit_logging=false",
               "--set", f"deployment.max_batch_size={max_batch}",
               # the demo's starting batch size may not exceed the maximum
               "--set", f"deployment.batch_size={min(4, max_batch)}",
               "--batch-buckets", buckets, "--length-buckets", lengths,
               "--chunk-tokens", str(chunk_tokens)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if " on " not in line:
        server.kill()
        raise SystemExit(f"the server did not start:\n{server.stderr.read()}")
    threading.Thread(target=server.stderr.read, daemon=True).start()  # drain the log
    url = line.split(" on ")[1].split()[0]
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as client:
        while client.get("/health").status_code != 200:
            if server.poll() is not None or time.monotonic() - started > 900:
                raise SystemExit("the server did not become ready")
            time.sleep(0.5)
    print(f"  ready after {time.monotonic() - started:.0f} s of warm-up")
    return server, url


def load(url: str, clients: int, seconds: float, new_tokens: int) -> dict[str, float]:
    latencies: list[float] = []
    tokens = [0]
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=300) as client:
            while time.monotonic() < deadline:
                prompt = [rng.randrange(1, 32000) for _ in range(rng.randint(8, 24))]
                began = time.perf_counter()
                try:
                    response = client.post("/v1/generate", json={"tokens": prompt,
                                                                  "max_new_tokens": new_tokens})
                    ok = response.status_code == 200
                    got = len(response.json()["tokens"]) if ok else 0
                except httpx.HTTPError:
                    ok, got = False, 0
                with lock:
                    if ok and time.monotonic() <= deadline + 60:
                        latencies.append(time.perf_counter() - began)
                        tokens[0] += got
                    elif not ok:
                        errors[0] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began  # includes finishing the requests in flight
    latencies.sort()
    return {"requests": len(latencies), "errors": errors[0], "tokens_per_s": tokens[0] / elapsed,
            "p50": statistics.median(latencies) if latencies else float("nan"),
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            if latencies else float("nan")}


def serving_compilations(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.search(r'^capibara_compilations_total\{phase="serving"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def run(plan: Path, label: str, max_batch: int, buckets: str, args) -> dict[str, float]:
    print(f"{label}: max_batch_size {max_batch}, batch buckets {buckets}")
    server, url = start(plan, max_batch, buckets, "64", args.chunk_tokens)
    try:
        load(url, 1, 2, args.new_tokens)  # one request to settle the first call's costs
        result = load(url, args.clients, args.seconds, args.new_tokens)
        result["compilations"] = serving_compilations(url)
    finally:
        server.send_signal(signal.SIGTERM)
        status = server.wait(120)
    result["exit"] = status
    print(f"  {result['requests']} requests, {result['errors']} errors, "
          f"{result['tokens_per_s']:.1f} tokens/s, p50 {result['p50'] * 1e3:.0f} ms, "
          f"p99 {result['p99'] * 1e3:.0f} ms, {result['compilations']:.0f} compilations while "
          f"serving, exit status {status}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--chunk-tokens", type=int, default=8,
                        help="tokens per batching round (the server's --chunk-tokens)")
    args = parser.parse_args()
    if not 8 <= args.new_tokens <= 40 or not 1 <= args.chunk_tokens <= 192:
        raise SystemExit("--new-tokens must be in [8, 40] (prompts of up to 24 tokens fit the "
                         "64-token bucket) and --chunk-tokens in [1, 192]")
    with tempfile.TemporaryDirectory() as directory:
        plan = compile_demo(Path(directory))
        print(f"demo plan, {args.clients} clients for {args.seconds:g} s, "
              f"{args.new_tokens} new tokens per request, {args.chunk_tokens} per round, "
              f"loopback, {os.cpu_count()} cores")
        batches = ",".join(str(b) for b in sorted({1, 4, args.clients}))
        batched = run(plan, "batching", args.clients, batches, args)
        single = run(plan, "one at a time (anchor)", 1, "1", args)
    speedup = batched["tokens_per_s"] / single["tokens_per_s"]
    print(f"throughput with batching / one at a time: {speedup:.2f}x "
          f"(p50 latency {batched['p50'] / single['p50']:.2f}x)")
    if batched["errors"] or single["errors"]:
        raise SystemExit("errors under load")


if __name__ == "__main__":
    main()
