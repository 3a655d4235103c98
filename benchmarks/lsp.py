"""How fast `capibara lsp` answers a warm editor, over its real stdio transport.

    python benchmarks/lsp.py [--rounds 200]

A client (pygls's LanguageClient, as in tests/lsp) starts ``python -m capibara
lsp`` in a workspace whose ``pyproject.toml`` names ``target = "tpu_v4-32"``,
opens configs/production/tpu_v4.toml and, round-robin:

- edits one character (``hidden_size = 768`` ↔ ``769``) and waits for that
  version's diagnostics (the re-check, hardware check included: goal ≤ 10 ms);
- hovers ``hidden_size`` and completes the values of ``[sparsity] method``
  (goal ≤ 5 ms each);
- anchor: a hover over a blank line, which the server answers with nothing:
  the cost of the protocol round trip itself, measured side by side.

Medians of wall time per request, and their ratio to the anchor. The
in-process time of the check alone (``capibara.lsp.analysis.analyse``) is
printed beside them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lsp.editor import Editor  # noqa: E402

CONFIG = ROOT / "configs" / "production" / "tpu_v4.toml"
GOALS_MS = {"re-check after a 1-char edit": 10.0, "hover": 5.0, "completion": 5.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "pyproject.toml").write_text('[tool.capibara]\ntarget = "tpu_v4-32"\n')
        shutil.copy(CONFIG, root / "tpu_v4.toml")
        text = (root / "tpu_v4.toml").read_text()
        size_line = text.splitlines().index("hidden_size = 768")
        method_line = next(i for i, line in enumerate(text.splitlines())
                           if line.startswith("method = "))
        blank_line = text.splitlines().index("")
        editor = Editor(root)
        try:
            uri = editor.open(root / "tpu_v4.toml")
            editor.published(uri)

            def edit() -> None:  # 768 -> 769 -> 768 ...
                digit = "98"[editor.versions[uri] % 2]
                editor.change(uri, (size_line, 16), (size_line, 17), digit)
                editor.published(uri)

            requests = {
                "anchor: hover over nothing": lambda: editor.hover(uri, blank_line, 0),
                "re-check after a 1-char edit": edit,
                "hover": lambda: editor.hover(uri, size_line, 3),
                "completion": lambda: editor.complete(uri, method_line, 10),
            }
            for request in requests.values():  # warm up
                for _ in range(5):
                    request()
            samples: dict[str, list[float]] = {name: [] for name in requests}
            for _ in range(args.rounds):
                for name, request in requests.items():
                    start = time.perf_counter()
                    request()
                    samples[name].append(time.perf_counter() - start)
        finally:
            editor.close()

        from capibara.lsp.analysis import analyse

        path = str(root / "tpu_v4.toml")
        checks = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            analyse(path, text, {})
            checks.append(time.perf_counter() - start)

    anchor = statistics.median(samples["anchor: hover over nothing"])
    for name, values in samples.items():
        median = statistics.median(values)
        goal = f"   goal <= {GOALS_MS[name]:g} ms" if name in GOALS_MS else ""
        print(f"{name:32s} median {median * 1e3:6.2f} ms   {median / anchor:5.2f}x anchor{goal}")
    print(f"{'in process: the check alone':32s} median {statistics.median(checks) * 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
