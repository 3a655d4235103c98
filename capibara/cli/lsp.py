"""``capibara lsp``: the language server for config files, over stdio.

    capibara lsp

An editor starts it and speaks the Language Server Protocol on its standard
input and output (see the README for VS Code, Neovim and Helix, and
:mod:`capibara.lsp` for the ``[tool.capibara]`` workspace settings). It needs
the ``lsp`` extra: ``pip install 'capibara[lsp]'``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

EXIT_OK, EXIT_USAGE = 0, 2


def add_verb(verbs: Any) -> None:
    lsp = verbs.add_parser("lsp", help="serve editors over stdio (Language Server Protocol)")
    lsp.add_argument("--stdio", action="store_true",
                     help="talk over standard input and output (the default and only transport; "
                          "accepted because many editors pass it)")
    lsp.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from capibara.lsp.server import serve
    except ImportError as missing:
        sys.stderr.write(f"error: `capibara lsp` needs {missing.name}: "
                         "pip install 'capibara[lsp]'\n")
        return EXIT_USAGE
    serve()
    return EXIT_OK
