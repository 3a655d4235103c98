"""The server's decisions that need no server: batch limits and windows, buckets,
keys and rate limits, request checks, and the refusals before start-up."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from capibara import cli
from capibara.config import ModularModelConfig
from capibara.serve.auth import KeyRing, RateLimiter, bearer_token, key_id
from capibara.serve.batching import batch_limit, batch_window, context_limit, default_buckets
from capibara.serve.requests import HTTPError, parse_completion, parse_generate

ROOT = Path(__file__).resolve().parents[2]


def test_batch_limit_follows_adaptive_batching_and_the_plans_batch_size():
    adaptive = ModularModelConfig(max_batch_size=12)
    fixed = ModularModelConfig(adaptive_batching=False, batch_size=8)
    auto = ModularModelConfig(adaptive_batching=False)
    assert batch_limit(adaptive, plan_batch_size=4, largest_bucket=16) == 12
    assert batch_limit(adaptive, plan_batch_size=4, largest_bucket=8) == 8  # never past a bucket
    assert batch_limit(fixed, plan_batch_size=4, largest_bucket=16) == 8
    assert auto.batch_size == "auto"
    assert batch_limit(auto, plan_batch_size=4, largest_bucket=16) == 4  # as the plan resolved it


def test_adaptive_window_follows_the_arrival_rate():
    assert batch_window(False, 0.0, 0.005, 3) == 0.005  # fixed without adaptive batching
    assert batch_window(True, 10.0, 0.005, 3) == 0.0  # rare requests: do not wait
    assert batch_window(True, 1000.0, 0.005, 3) == pytest.approx(0.003)  # 3 rows at 1000/s
    assert batch_window(True, 100.0, 0.005, 3) == 0.005  # at most the configured window
    assert batch_window(True, 1000.0, 0.005, 0) == 0.0  # nothing free


def test_default_buckets_stay_few_and_fit_the_context():
    batches, lengths = default_buckets(32, 2048, 8)
    assert batches == (1, 4, 16, 32) and lengths == (64, 256, 1024, 2040)
    assert default_buckets(1, 128, 8) == ((1,), (64, 120))
    assert context_limit(lengths) == 2041


def test_keys_compare_by_digest_and_are_named_by_key_id():
    ring = KeyRing(("alpha", "beta"))
    assert ring.check("beta") and not ring.check("bet") and not ring.check(None)
    assert not KeyRing(()).check("")
    assert key_id("alpha") == key_id("alpha") != key_id("beta")
    assert "alpha" not in key_id("alpha")
    assert bearer_token("Bearer  abc ") == "abc" and bearer_token("Basic abc") is None


def test_rate_limit_is_a_bucket_per_caller():
    limiter = RateLimiter(per_minute=2)
    assert limiter.take("a", now=0.0) == 0 and limiter.take("a", now=0.0) == 0
    assert limiter.take("a", now=0.0) == pytest.approx(30.0)  # one token every 30 s
    assert limiter.take("b", now=0.0) == 0  # another caller has its own bucket
    assert limiter.take("a", now=30.0) == 0


@pytest.mark.parametrize("body, kind", [
    ([], "invalid_request"),
    ({"prompt": ""}, "invalid_parameter"),
    ({"prompt": "a", "max_tokens": True}, "invalid_parameter"),
    ({"prompt": "a", "stream": "yes"}, "invalid_parameter"),
    ({"prompt": "a", "n": 2}, "unsupported_parameter"),
    ({"prompt": "a", "model": "other"}, "model_not_found"),
])
def test_completion_bodies_are_checked(body, kind):
    with pytest.raises(HTTPError) as refused:
        parse_completion(body, "capibara_dev")
    assert refused.value.kind == kind


def test_a_completion_body_in_the_openai_shape_is_accepted():
    parsed = parse_completion({"model": "m", "prompt": ["hi"], "max_tokens": 3, "stream": True,
                               "user": "u"}, "m")
    assert (parsed.text, parsed.max_new_tokens, parsed.stream) == ("hi", 3, True)
    assert parse_generate({"tokens": [0, 9]}, 10).tokens == [0, 9]
    with pytest.raises(HTTPError):
        parse_generate({"tokens": [True]}, 10)


def test_a_tokenizer_that_is_not_a_regular_file_is_refused(tmp_path):
    from capibara.serve.tokenizer import tokenizer_problem

    assert "directory" in tokenizer_problem(str(tmp_path), 512)
    assert "not a SentencePiece model" in tokenizer_problem(__file__, 512)


def _serve(args, capsys):
    capsys.readouterr()
    status = cli.main(["serve", *args], out=io.StringIO())
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "small.plan.json"
    assert cli.main(["compile", "--no-env", "configs/development/development.toml",
                     "--set", "model.hidden_size=64", "--set", "model.num_layers=2",
                     "--set", "model.num_heads=1", "-o", str(path)], out=io.StringIO()) == 0
    return path


def test_a_plan_takes_only_runtime_overrides(plan, capsys):
    status, err = _serve([str(plan), "--set", "model.hidden_size=128", "--message-format",
                          "json"], capsys)
    assert status == 1
    assert json.loads(err.splitlines()[0])["code"] == "S501"


def test_hooks_that_do_not_import_are_refused(plan, capsys):
    status, err = _serve([str(plan), "--output-filter", "no_such_module_here:f",
                          "--set", "enterprise.content_safety_check=false"], capsys)
    assert status == 1
    assert "error[R402]: `--output-filter no_such_module_here:f` cannot be loaded" in err


def test_the_plan_file_locates_a_setting_that_needs_a_hook(plan, capsys):
    status, err = _serve([str(plan), "--set", "enterprise.output_filtering=false"], capsys)
    assert status == 1
    assert "error[R401]: `content_safety_check` is on" in err
    assert f"--> {plan}:" in err and '"content_safety_check": true' in err


def test_key_files_are_read_and_tls_files_checked(plan, tmp_path, capsys):
    keys = tmp_path / "keys"
    keys.write_text("# the team's keys\nk1\n\nk2\n")
    from capibara.serve.service import ServeOptions, load_api_keys

    assert load_api_keys(ServeOptions(api_key_file=str(keys)), {"CAPIBARA_API_KEYS": "k0,k1"}) == (
        "k0", "k1", "k2")
    status, err = _serve([str(plan), "--set", "enterprise.output_filtering=false",
                          "--set", "enterprise.content_safety_check=false",
                          "--set", "enterprise.request_encryption=true"], capsys)
    assert status == 1 and "S501" in err  # request_encryption is fixed when the plan is built


def test_the_python_api_refuses_to_start_as_the_cli_does(plan):
    import capibara
    from capibara.diagnostics import ConfigError

    with pytest.raises(ConfigError) as refused:
        capibara.serve(plan, port=0, overrides=["enterprise.content_safety_check=false"])
    assert [d.code for d in refused.value.diagnostics] == ["R401"]
    assert "output_filtering" in refused.value.diagnostics[0].message


def test_the_api_key_variable_is_not_mistaken_for_a_config_field():
    from capibara.config.sources import TOOL_ENV
    from capibara.serve.names import API_KEYS_ENV

    assert API_KEYS_ENV in TOOL_ENV
