"""`capibara serve` as a user meets it: a real server process on 127.0.0.1, real clients.

One server (a tiny plan, TLS, API keys, monitoring, MCP, both safety hooks,
two compiled buckets) serves every test here; the last test stops it with
SIGTERM while a stream is in flight.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import ipaddress
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from capibara import cli

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("key-alpha", "key-beta")
#: The development preset shrunk to seconds (as the Makefile's demo, smaller), no VQ or MoE.
TINY = ["--set", "model.hidden_size=64", "--set", "model.num_layers=2",
        "--set", "model.num_heads=1", "--set", "model.max_seq_length=128",
        "--set", "model.vocab_size=512",
        "--set", "vector_quantization.enabled=false", "--set", "sparsity.enabled=false",
        "--set", "generation.temperature=0.0"]
SERVICES = ["--set", "enterprise.monitoring_enabled=true", "--set", "enterprise.mcp_enabled=true",
            "--set", "enterprise.api_key_required=true",
            "--set", "enterprise.request_encryption=true"]
HOOKS = '''
def safety(prompt):
    return "it mentions something forbidden" if "forbidden" in str(prompt) else None

def brackets(completion):
    return f"<{completion}>" if isinstance(completion, str) else completion
'''
CHUNK = 8

pytestmark = pytest.mark.jax  # the server process builds the model
CONTEXT = 48 + 1  # the one length bucket, plus the token the last round adds


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _tokenizer(directory: Path) -> Path:
    import sentencepiece

    words = ["capibara", "river", "grass", "swims", "eats", "the", "a", "green", "slow", "warm",
             "water", "sun", "model", "plan", "serves", "tokens", "fast", "small", "big", "day"]
    lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(4 + i % 5))
             for i in range(400)]
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(lines))
    sentencepiece.SentencePieceTrainer.Train(
        input=str(corpus), model_prefix=str(directory / "tok"), vocab_size=36,
        character_coverage=1.0, minloglevel=2)
    return directory / "tok.model"


class Served:
    def __init__(self, proc, url, mcp_url, verify, log_path, first_health):
        self.proc, self.url, self.mcp_url = proc, url, mcp_url
        self.verify, self.log_path, self.first_health = verify, log_path, first_health

    def client(self, key: str | None = KEYS[0]) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, verify=self.verify, headers=headers, timeout=120)

    def metrics(self) -> str:
        with self.client() as client:
            response = client.get("/metrics")
        assert response.status_code == 200
        return response.text


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    plan = tmp / "tiny.plan.json"
    status = cli.main(["compile", "--no-env", "configs/development/development.toml",
                       "--target", "auto", *TINY, *SERVICES, "-o", str(plan)],
                      out=open(os.devnull, "w"))
    assert status == 0
    (tmp / "hooks_for_tests.py").write_text(HOOKS)
    cert, key = _self_signed(tmp)
    tokenizer = _tokenizer(tmp)
    env = {**os.environ, "CAPIBARA_API_KEYS": ",".join(KEYS), "XDG_CACHE_HOME": str(tmp / "cache"),
           "PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    log_path = tmp / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "capibara", "serve", str(plan), "--port", "0", "--mcp-port", "0",
         "--tokenizer", str(tokenizer), "--tls-cert", str(cert), "--tls-key", str(key),
         "--content-safety", "hooks_for_tests:safety",
         "--output-filter", "hooks_for_tests:brackets",
         "--batch-buckets", "1,4", "--length-buckets", "48", "--chunk-tokens", str(CHUNK),
         "--rate-limit", "60"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    try:
        url = proc.stdout.readline().split(" on ")[1].split()[0]
        mcp_url = proc.stdout.readline().split()[1]
        verify = ssl.create_default_context(cafile=str(cert))
        first_health = None
        deadline = time.monotonic() + 240
        with httpx.Client(base_url=url, verify=verify, timeout=10) as client:
            while time.monotonic() < deadline:
                health = client.get("/health")
                if first_health is None:
                    assert client.get("/health/live").status_code == 200
                    completion = client.post("/v1/generate", json={"tokens": [1]},
                                             headers={"Authorization": f"Bearer {KEYS[0]}"})
                    first_health = (health.status_code, health.json(), completion.status_code,
                                    completion.json())
                if health.status_code == 200:
                    break
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.2)
            else:
                pytest.fail("the server did not become ready:\n" + log_path.read_text())
        yield Served(proc, url, mcp_url, verify, log_path, first_health)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _events(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_readiness_is_false_while_warming_up(served):
    status, body, completion_status, completion = served.first_health
    assert (status, body["ready"], body["warming_up"], body["live"]) == (503, False, True, True)
    assert completion_status == 503 and completion["error"]["type"] == "warming_up"
    with served.client(None) as client:
        assert client.get("/health").json()["ready"] is True


def test_text_completion_uses_the_tokenizer_and_the_output_filter(served):
    with served.client() as client:
        response = client.post("/v1/completions", json={"prompt": "the capibara swims",
                                                          "max_tokens": 12})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "text_completion" and body["model"] == "capibara_dev"
    assert body["usage"]["completion_tokens"] == 12
    text = body["choices"][0]["text"]
    assert text.startswith("<") and text.endswith(">")  # the --output-filter hook ran


def test_streaming_completion_arrives_a_chunk_at_a_time(served):
    with served.client() as client:
        with client.stream("POST", "/v1/completions",
                           json={"prompt": "green river", "max_tokens": 20, "stream": True}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = _events(r)
        with client.stream("POST", "/v1/generate",
                           json={"tokens": [5, 6, 7], "max_new_tokens": 20, "stream": True}) as r:
            token_events = _events(r)
    assert events[-1] == "[DONE]" and token_events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "length"]
    assert all(c["choices"][0]["text"].startswith("<") for c in chunks[:-1])
    pieces = [json.loads(e)["tokens"] for e in token_events[:-1]]
    assert [len(p) for p in pieces] == [8, 8, 4, 0]  # 20 tokens, --chunk-tokens 8


def test_concurrent_requests_are_batched_without_compiling_again(served):
    prompts = [[3, 1, 4], [1, 5, 9, 2, 6, 5, 3], list(range(10, 22)), list(range(30, 50))]

    def generate(tokens):
        with served.client() as client:
            response = client.post("/v1/generate", json={"tokens": tokens, "max_new_tokens": 24})
        assert response.status_code == 200, response.text
        return response.json()["tokens"]

    alone = [generate(p) for p in prompts]  # one at a time: rounds of one row
    before = served.metrics()
    with concurrent.futures.ThreadPoolExecutor(len(prompts) * 2) as pool:
        together = list(pool.map(generate, prompts * 2))
    after = served.metrics()
    # Greedy decoding: padding and batch neighbours change nothing.
    assert together == alone * 2
    rounds = (_metric(after, "capibara_batch_size_count")
              - _metric(before, "capibara_batch_size_count"))
    single = (_metric(after, "capibara_batch_size_bucket", le="1.0")
              - _metric(before, "capibara_batch_size_bucket", le="1.0"))
    assert rounds > single  # some rounds carried more than one request
    assert rounds < 8 * 3  # fewer rounds than 8 requests x 3 chunks alone
    assert _metric(after, "capibara_compilations_total", phase="warmup") == 2  # 2 batch x 1 length
    assert _metric(after, "capibara_compilations_total", phase="serving") == 0


def test_bad_requests_get_the_right_status_and_a_json_error(served):
    big = {"prompt": "x" * (70 << 10)}
    cases = [
        (None, "post", "/v1/generate", {"json": {"tokens": [1]}}, 401, "unauthorized"),
        ("wrong-key", "post", "/v1/generate", {"json": {"tokens": [1]}}, 401, "unauthorized"),
        (KEYS[0], "post", "/v1/generate", {"content": b"{not json"}, 400, "invalid_json"),
        (KEYS[0], "post", "/v1/completions", {"json": big}, 413, "request_too_large"),
        (KEYS[0], "post", "/v1/generate", {"json": {"tokens": [1] * 45, "max_new_tokens": 10}},
         400, "context_length_exceeded"),
        (KEYS[0], "post", "/v1/generate", {"json": {"tokens": [1], "bogus": 1}}, 400,
         "unknown_parameter"),
        (KEYS[0], "post", "/v1/completions", {"json": {"prompt": "a", "temperature": 2}}, 400,
         "unsupported_parameter"),
        (KEYS[0], "post", "/v1/generate", {"json": {"tokens": [512]}}, 400, "invalid_parameter"),
        (KEYS[0], "post", "/v1/generate", {"json": {"tokens": [1], "max_new_tokens": 0}}, 400,
         "invalid_parameter"),
        (KEYS[0], "post", "/v1/completions", {"json": {"prompt": "a", "model": "gpt-4"}}, 404,
         "model_not_found"),
        (KEYS[0], "post", "/v1/completions", {"json": {"prompt": "a forbidden word"}}, 400,
         "content_refused"),
        (KEYS[0], "get", "/v1/nowhere", {}, 404, "not_found"),
    ]
    for key, method, path, kwargs, status, kind in cases:
        with served.client(key) as client:
            response = getattr(client, method)(path, **kwargs)
        assert (response.status_code, response.json()["error"]["type"]) == (status, kind), (
            path, kwargs.get("json"), response.text)
    with served.client(None) as client:
        assert client.get("/health").status_code == 200
    assert served.proc.poll() is None


def test_runtime_updates_apply_between_batches_and_refuse_what_cannot_change(served):
    from capibara.diagnostics import ConfigError, to_json
    from capibara.config import ModularModelConfig

    with served.client() as client:
        applied = client.post("/v1/runtime", json={"temperature": 0.7})
        immutable = client.post("/v1/runtime", json={"hidden_size": 128})
        unknown = client.post("/v1/runtime", json={"no_such_field": 1})
        unread = client.post("/v1/runtime", json={"debug_mode": True})
        restored = client.post("/v1/runtime", json={"temperature": 0.0, "debug_mode": False})
        settings = client.get("/v1/runtime").json()["settings"]
    with served.client(KEYS[1] + "x") as client:
        wrong_key = client.post("/v1/runtime", json={"temperature": 0.1})
    assert applied.status_code == 200 and applied.json()["settings"]["temperature"] == 0.7
    assert unread.status_code == 200
    assert "nothing in the server reads it" in unread.json()["notes"][0]
    assert restored.status_code == 200 and settings["temperature"] == 0.0
    assert wrong_key.status_code == 401
    assert immutable.status_code == 409
    served_diagnostic = immutable.json()["error"]["diagnostics"][0]
    with pytest.raises(ConfigError) as python_api:
        ModularModelConfig().update_runtime_settings({"hidden_size": 128})
    assert served_diagnostic == json.loads(to_json(python_api.value.diagnostics[0]))
    assert served_diagnostic["code"] == "S501"
    assert unknown.status_code == 400
    assert unknown.json()["error"]["diagnostics"][0]["code"] == "S103"


def test_metrics_in_prometheus_format(served):
    text = served.metrics()
    for name in ("capibara_requests_total", "capibara_request_latency_seconds_bucket",
                 "capibara_tokens_generated_total", "capibara_batch_size_bucket",
                 "capibara_queue_depth", "capibara_compilations_total", "capibara_ready"):
        assert name in text
    assert _metric(text, "capibara_ready") == 1
    assert _metric(text, "capibara_tokens_generated_total") > 0


def test_rate_limit_per_key(served):
    with served.client(KEYS[1]) as client:
        statuses = []
        for _ in range(100):  # a burst of 60, refilled at one a second
            limited = client.get("/v1/models")
            statuses.append(limited.status_code)
            if limited.status_code != 200:
                break
        other_key = served.client(KEYS[0]).get("/v1/models")
    assert statuses.count(200) >= 60 and statuses[-1] == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limited"
    assert other_key.status_code == 200  # the limit is per key


def test_mcp_tools_with_the_sdk_client(served):
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def session():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEYS[0]}"},
                                      verify=served.verify, timeout=120) as http:
            async with Client(streamable_http_client(served.mcp_url, http_client=http)) as client:
                names = sorted(tool.name for tool in (await client.list_tools()).tools)
                generated = await client.call_tool("generate", {"tokens": [5, 6, 7],
                                                                "max_new_tokens": 20})
                explained = await client.call_tool("explain", {"code_or_field": "S501"})
                checked = await client.call_tool("check_config",
                                                 {"toml": "[model]\nhidden_size = 'big'\n"})
                return names, generated, explained, checked

    names, generated, explained, checked = anyio.run(session)
    assert names == ["check_config", "explain", "generate"]
    assert not generated.is_error
    assert generated.structured_content["completion_tokens"] == 20
    with served.client() as client:  # the same tokens as the HTTP API gives (greedy)
        http = client.post("/v1/generate", json={"tokens": [5, 6, 7], "max_new_tokens": 20})
    assert generated.structured_content["completion"] == http.json()["tokens"]
    assert "S501" in explained.content[0].text
    assert "error[S201]" in checked.content[0].text
    assert checked.content[0].text.endswith("1 error\n")
    with httpx.Client(verify=served.verify) as anonymous:
        refused = anonymous.post(served.mcp_url, json={"jsonrpc": "2.0", "id": 1,
                                                       "method": "tools/list"})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"


def test_audit_log_is_json_names_callers_by_key_id_and_masks_prompts(served):
    lines = served.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON (structured_logging)
    audit = [r for r in records if r["logger"] == "capibara.audit"]
    assert len(audit) > 20
    assert {r["outcome"] for r in audit} >= {"ok", "refused"}
    assert all({"caller", "endpoint", "status", "time"} <= set(r) for r in audit)
    assert all("prompt" not in r for r in audit)  # sensitive_data_masking is on
    text = served.log_path.read_text()
    assert not any(key in text for key in KEYS)
    assert "the capibara swims" not in text


def test_sigterm_finishes_the_stream_in_flight_and_exits_0(served):
    events: list[str] = []
    first = threading.Event()

    def stream():
        with served.client() as client:
            with client.stream("POST", "/v1/generate",
                               json={"tokens": [2, 3], "max_new_tokens": 40, "stream": True}) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        events.append(line[len("data: "):])
                        first.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first.wait(60)
    served.proc.send_signal(signal.SIGTERM)
    reader.join(120)
    assert served.proc.wait(120) == 0
    assert events[-1] == "[DONE]"
    assert sum(len(json.loads(e)["tokens"]) for e in events[:-1]) == 40
    with pytest.raises(httpx.ConnectError):
        with served.client() as client:
            client.get("/health")
    assert '"message": "stopped"' in served.log_path.read_text()
