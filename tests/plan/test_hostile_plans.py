"""Plans that decode and carry a correct digest, but say what no compiler wrote.

Anyone can reseal a plan (``capibara.plan.seal``), so the digest is no defence.
Before the whole-plan check each of these exited 70 in ``run`` (or in ``check``,
``explain`` and ``diff`` too), and a mesh of ``[0, 1]`` was accepted and ran.
Now every verb refuses them with an ``R11x`` diagnostic that names the field.
"""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pytest

import capibara.cli.app as cli
from capibara.diagnostics import ConfigError
from capibara.plan import decode_plan, encode_plan, load_plan_file, seal, validate_plan
from capibara.testing.plans import HOSTILE, nested_plan_bytes, resealed_bytes, small_plan

#: The field each case must name in its diagnostic.
NAMED = {
    "family-unknown": "kernels.blocks.attention.family",
    "family-base": "kernels.blocks.attention.family",
    "family-dotdot-os": "kernels.blocks.attention.family",
    "implementation-unknown": "kernels.blocks.attention.implementation",
    "shape-negative": "kernels.blocks.attention.shapes.q[1]",
    "shape-4e9": "kernels.blocks.wq.shapes.w[1]",
    "dtype-float1024": "kernels.blocks.attention.dtypes.q",
    "block_q-zero": "kernels.blocks.attention.params.block_q",
    "block_q-string": "kernels.blocks.attention.params.block_q",
    "mesh-axes-mismatch": "mesh.shape",
    "mesh-zero": "mesh.shape[0]",
    "mesh-too-large": "mesh.shape",
    "top_k-above-experts": "kernels.blocks.moe.attrs.top_k",
    "config-key-missing": "config.model.vocab_size",
    "vocab-zero": "model.vocab_size",
    "kernel-name-escape": "kernels[0].name",
}


def test_every_hostile_case_names_its_field() -> None:
    assert set(NAMED) == set(HOSTILE)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name, case in HOSTILE.items():
        paths[name] = folder / f"{name}.plan.json"
        paths[name].write_bytes(resealed_bytes(case.change(small_plan())))
    paths["nested"] = folder / "nested.plan.json"
    paths["nested"].write_bytes(nested_plan_bytes(1000))
    paths["good"] = folder / "good.plan.json"
    paths["good"].write_bytes(encode_plan(small_plan()))
    return paths


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_digest_matches_so_only_the_check_refuses_it(name: str, files) -> None:
    raw = msgspec.json.decode(files[name].read_bytes())
    with pytest.raises(ConfigError) as caught:
        load_plan_file(files[name])
    codes = {d.code for d in caught.value.diagnostics}
    assert "R105" not in codes and HOSTILE[name].code in codes, caught.value
    assert raw["digest"].startswith("sha256:")
    assert any(f"`{NAMED[name]}`" in d.message for d in caught.value.diagnostics), caught.value


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = cli.main(list(argv), out=out)
    return status, out.getvalue()


@pytest.mark.parametrize("name", [*sorted(HOSTILE), "nested"])
@pytest.mark.parametrize("verb", ["check", "explain", "diff"])
def test_check_explain_and_diff_refuse_with_a_diagnostic(verb: str, name: str, files, capsys) -> None:
    args = {"check": [str(files[name])], "explain": [str(files[name])],
            "diff": [str(files["good"]), str(files[name])]}[verb]
    status, out = run_cli(verb, *args)
    text = out + capsys.readouterr().err
    assert status == 1, text
    code = HOSTILE[name].code if name in HOSTILE else "R107"
    assert f"error[{code}]" in text and "internal error" not in text


@pytest.mark.jax
@pytest.mark.parametrize("name", [*sorted(HOSTILE), "nested"])
def test_run_refuses_before_binding_any_kernel(name: str, files, capsys) -> None:
    status, out = run_cli("run", "--no-warmup", str(files[name]))
    text = out + capsys.readouterr().err
    assert status == 1, text
    assert "internal error" not in text


@pytest.mark.jax
def test_load_plan_checks_a_plan_object_too() -> None:
    from capibara.runtime.loader import load_plan

    hostile = seal(HOSTILE["family-dotdot-os"].change(small_plan()))
    with pytest.raises(ConfigError) as caught:
        load_plan(hostile, cache=False)
    assert caught.value.diagnostics[0].code == "R111"


def test_a_good_plan_passes_and_problems_are_all_reported() -> None:
    plan = small_plan()
    assert validate_plan(plan) is plan
    both = HOSTILE["vocab-zero"].change(HOSTILE["dtype-float1024"].change(plan))
    with pytest.raises(ConfigError) as caught:
        decode_plan(resealed_bytes(both), "both")
    assert {d.code for d in caught.value.diagnostics} == {"R110"}
    assert len(caught.value.diagnostics) == 2


def test_a_valid_plan_for_every_bundled_config_and_target_kind_passes() -> None:
    from capibara.compiler.driver import compile_sources
    from capibara.targets import get_target

    root = Path(__file__).resolve().parents[2]
    checked = 0
    for config in sorted((root / "configs").rglob("*.toml")):
        for target in ("cpu-amx", "gpu-a100x8", "tpu_v4-32", "tpu_v6e-8"):
            result = compile_sources([config], target=get_target(target), env=None)
            if result.plan is not None:
                assert validate_plan(result.plan) is result.plan
                checked += 1
    assert checked >= 20


@pytest.mark.jax
def test_model_from_plan_checks_a_plan_object_too() -> None:
    from capibara.model.facade import Model

    hostile = seal(HOSTILE["vocab-zero"].change(small_plan()))
    with pytest.raises(ConfigError) as caught:
        Model.from_plan(hostile)
    assert caught.value.diagnostics[0].code == "R110"
