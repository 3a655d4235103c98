"""``capibara lsp``: a language server for capibara config files.

An editor attached to it over stdio sees what ``capibara check`` says of the
file being edited, as it is typed, and gets hover docs, completion, quick
fixes, symbols and go-to-definition from the same field table.

Workspace settings live in the ``[tool.capibara]`` table of the nearest
``pyproject.toml`` above a config file (see :mod:`capibara.lsp.settings`)::

    [tool.capibara]
    target = "tpu_v4-32"        # check every config against this machine (as --target)
    layers = [["configs/base.toml", "configs/prod.toml"]]   # stacks, lowest first

Modules: :mod:`~capibara.lsp.server` (the protocol wiring), :mod:`~capibara.lsp.analysis`
(one check of one open file), :mod:`~capibara.lsp.settings` (``[tool.capibara]``),
:mod:`~capibara.lsp.positions` (UTF-16 code units), :mod:`~capibara.lsp.convert`
(diagnostics), :mod:`~capibara.lsp.lookup` (what is under the cursor),
:mod:`~capibara.lsp.hover`, :mod:`~capibara.lsp.completion`, :mod:`~capibara.lsp.actions`
(quick fixes, explain) and :mod:`~capibara.lsp.symbols` (symbols, go-to-definition).
"""
