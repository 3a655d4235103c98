"""The ``capibara`` command line.

Exit status: 0 when clean or only warnings, 1 when a configuration has
errors, 2 for usage errors, 70 for an internal error (a bug in capibara: the
message says so and names the exception, never a bare traceback).
"""

from __future__ import annotations

import argparse
import errno
import io
import os
import sys
from typing import Any, Callable, Sequence, TextIO

from capibara.cli.output import print_diagnostics
from capibara.diagnostics import ConfigError, escape

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, measuring the terminal without :mod:`shutil` (argparse
    imports it, with the compression modules it pulls in, for every argument added)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """``$COLUMNS``, else the terminal's width, else 80 (as ``shutil.get_terminal_size``)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # usage errors exit 2 with a hint, like argparse
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {escape(message)}\n")
        raise SystemExit(EXIT_USAGE)


def _add_config_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="TOML config files, layered in order (later files win key by key)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="override one field (TOML value syntax), e.g. --set sparsity.ratio=0.5")
    parser.add_argument("--no-env", action="store_true",
                        help="ignore CAPIBARA_* environment variables (reproducible builds)")
    parser.add_argument("--target", metavar="NAME",
                        help="check against a target (e.g. tpu_v4-32, gpu-h100, cpu, auto)")


def _add_message_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--message-format", choices=("human", "json"), default="human",
                        help="how diagnostics are printed (json: one object per line)")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: with every verb, or only with ``verb`` (and a verb
    registered with it) when it names one, which is all a run of that verb parses.

    A run builds only its own verb: the other verbs' parsers and modules cost a cold
    ``capibara check`` ~3 ms (benchmarks/cold_start.py). ``--help`` and a word that
    names no verb get every verb, in the order :data:`_VERBS` lists them.
    """
    from capibara import __version__

    parser = _Parser(prog="capibara", description="Compile model configurations (TOML) into "
                                                  "frozen plans, and run them.")
    parser.add_argument("--version", action="version", version=f"capibara {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    only = verb if any(verb in names for names, _ in _VERBS) else None
    for names, add in _VERBS:
        if only is None or only in names:
            add(verbs)
    return parser


def _add_check(verbs: Any) -> None:
    check = verbs.add_parser(
        "check", help="parse and check configs; print diagnostics",
        description="Parse and check configs, layered in order. A plan file among them is "
                    "verified (format, digest, compiler); a checkpoint directory is checked "
                    "against the parameters the configs imply: `capibara check CONFIG "
                    "CHECKPOINT` says whether the checkpoint fits the model (alone, a "
                    "checkpoint is checked for integrity).")
    _add_config_inputs(check)
    _add_message_format(check)
    check.add_argument("--runtime", dest="runtime_updates", action="append", default=[],
                       metavar="PATH=VALUE",
                       help="also check that this runtime update (as update_runtime_settings "
                            "on a live model) is allowed")
    check.add_argument("--mode", choices=("train", "inference"),
                       help="what the config is for: enables the rules that depend on it "
                            "(e.g. training settings that inference ignores)")
    check.set_defaults(run=_run_check)


def _add_explain(verbs: Any) -> None:
    explain = verbs.add_parser("explain", help="explain a diagnostic code (e.g. P101), a config "
                                                "field (e.g. vq_codes or model.hidden_size), or a "
                                                "plan and one of its paths (PLAN [PATH])")
    explain.add_argument("code", metavar="CODE|FIELD|PLAN",
                         help="a diagnostic code (P101), a config field (vq_codes, "
                              "model.hidden_size) or a plan file")
    explain.add_argument("path", nargs="?", help="with a plan: the value to explain "
                                                 "(e.g. model.hidden_size, mesh.shape)")
    explain.set_defaults(run=_run_explain)


def _add_schema(verbs: Any) -> None:
    schema = verbs.add_parser("schema", help="print the JSON Schema (draft 2020-12) of config files")
    schema.set_defaults(run=_run_schema)


def _add_migrate(verbs: Any) -> None:
    migrate = verbs.add_parser("migrate", help="rewrite a legacy (v2) config as v3 TOML")
    migrate.add_argument("file", metavar="OLD.toml")
    migrate.add_argument("--write", action="store_true",
                         help="rewrite the file in place (atomically), keeping comments and layout")
    _add_message_format(migrate)
    migrate.set_defaults(run=_run_migrate)


def _add_targets(verbs: Any) -> None:
    targets = verbs.add_parser("targets", help="list the target catalog; mark the detected host")
    targets.set_defaults(run=_run_targets)


def _add_plan_verbs(verbs: Any) -> None:
    from capibara.cli.plan import add_verbs

    add_verbs(verbs, _add_config_inputs, _add_message_format)


def _add_run(verbs: Any) -> None:
    from capibara.cli.run import add_verb

    add_verb(verbs, _add_message_format)


def _add_lsp(verbs: Any) -> None:
    from capibara.cli.lsp import add_verb

    add_verb(verbs)


def _add_serve(verbs: Any) -> None:
    from capibara.cli.serve import add_verb

    add_verb(verbs, _add_message_format)


def _add_data(verbs: Any) -> None:
    from capibara.cli.data import add_verb

    add_verb(verbs, _add_message_format)


def _add_train(verbs: Any) -> None:
    from capibara.cli.train import add_verb

    add_verb(verbs, _add_config_inputs, _add_message_format)


def _add_report(verbs: Any) -> None:
    from capibara.cli.report import add_verb

    add_verb(verbs, _add_message_format)


#: Every verb, in the order ``capibara --help`` lists them: the names one function
#: registers, and that function.
_VERBS: tuple[tuple[tuple[str, ...], Callable[[Any], None]], ...] = (
    (("check",), _add_check), (("explain",), _add_explain), (("schema",), _add_schema),
    (("migrate",), _add_migrate), (("targets",), _add_targets),
    (("compile", "diff"), _add_plan_verbs), (("run",), _add_run), (("lsp",), _add_lsp),
    (("serve",), _add_serve), (("data",), _add_data), (("train",), _add_train),
    (("report",), _add_report))


# --------------------------------------------------------------------------- verbs


def _run_check(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.compiler import check as pipeline
    from capibara.cli.plan import split_plan_files

    files, plan_diagnostics = split_plan_files(args.files)  # plans are verified, not parsed
    checkpoints: list[str] = []
    if any(os.path.isdir(path) for path in files):  # the checkpoint module costs ~15 ms to import
        from capibara.model.checkpoint import is_checkpoint_dir

        checkpoints = [path for path in files if is_checkpoint_dir(path)]  # verified, not parsed
    files = [path for path in files if path not in checkpoints]
    try:
        if files:
            diagnostics = plan_diagnostics + pipeline.check(
                files, env=None if args.no_env else pipeline.ENVIRON, overrides=args.overrides,
                target=args.target, runtime_updates=args.runtime_updates, mode=args.mode,
                checkpoints=checkpoints)
        else:
            from capibara.model.checkpoint import check_checkpoint

            diagnostics = plan_diagnostics + [d for path in checkpoints for d in check_checkpoint(path)]
    except ConfigError as error:
        print_diagnostics(plan_diagnostics + list(error.diagnostics), args.message_format, out)
        return EXIT_ERRORS
    print_diagnostics(diagnostics, args.message_format, out)
    if args.message_format == "human" and not diagnostics:
        out.write(f"ok: {escape(', '.join(args.files))}\n")
    if args.message_format == "human" and checkpoints:
        from capibara.model.checkpoint import UNVERIFIED

        out.write(f"note: {UNVERIFIED}\n")
    return EXIT_ERRORS if any(d.is_error for d in diagnostics) else EXIT_OK


def _run_explain(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.cli.plan import explain_plan_file, plan_exists
    from capibara.codes import CODES, explain

    if plan_exists(args.code):
        return explain_plan_file(args.code, args.path, out)

    code = args.code.upper()
    if code not in CODES:
        from capibara.config.fields import explain_field

        try:
            out.write(explain_field(args.code))
            return EXIT_OK
        except KeyError:
            pass
        import difflib

        from capibara.config.fields import FIELD_BY_NAME, all_paths

        near = difflib.get_close_matches(code, CODES, n=3, cutoff=0.5)
        fields = difflib.get_close_matches(args.code, [*FIELD_BY_NAME, *all_paths()], n=3,
                                           cutoff=0.7)
        shown = [f"`{n}`" for n in fields] + near
        hint = f" (did you mean {', '.join(shown)}?)" if shown else ""
        sys.stderr.write(f"error: `{escape(args.code)}` is not a diagnostic code, a config "
                         f"field or a plan file{hint}\n")
        return EXIT_USAGE
    out.write(explain(code))
    return EXIT_OK


def _run_schema(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from capibara.config.jsonschema import json_schema

    out.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _run_migrate(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.config import legacy

    try:
        if args.write:
            changed, diagnostics = legacy.write_migrated(args.file)
        else:
            from capibara import toml

            text, diagnostics = legacy.migrate_document(toml.parse_file(args.file))
            out.write(text)
    except ConfigError as error:
        print_diagnostics(error.diagnostics, args.message_format, sys.stderr)
        return EXIT_ERRORS
    print_diagnostics(diagnostics, args.message_format, sys.stderr)
    if args.write:
        sys.stderr.write(f"{'migrated' if changed else 'nothing to migrate in'} "
                         f"{escape(args.file)}\n")
    return EXIT_OK


def _run_targets(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.targets import CATALOG, detect_host

    host = detect_host()
    rows = [("", "name", "platform", "devices", "memory/device", "native dtypes")]
    entries = list(CATALOG.values())
    if host.name not in CATALOG or CATALOG[host.name] != host:
        entries = [host] + [t for t in entries if t.name != host.name]
    for target in entries:
        memory = f"{target.memory_per_device_gib:g} GiB" if target.memory_per_device_gib else "host"
        mark = "*" if target is host else ""
        rows.append((mark, target.name, target.platform, str(target.device_count), memory,
                     ",".join(target.native_dtypes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
    out.write(f"\n* detected host: {escape(host.name)} ({escape(host.doc)})\n")
    out.write("any name takes an xN suffix for N devices of that kind, e.g. gpu-h100x8, cpux8\n")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, *,
         as_program: bool = False) -> int:
    """Run the command line; returns the exit status.

    ``as_program`` is for :func:`program` alone: only the process's own command
    line may start the process again (``capibara run`` does, for huge pages).
    """
    if out is None:
        # File names and arguments carry the bytes they could not decode as lone surrogates;
        # a strict UTF-8 stdout would fail on them (found by fuzzing), so show them escaped.
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
                stream.reconfigure(errors="backslashreplace")
    out = CheckedOutput(out or sys.stdout)
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words[0] if words else None)
    try:
        args = parser.parse_args(words)
        if as_program and getattr(args, "huge_pages", False):
            from capibara.runtime.hugepages import reexec_with_huge_pages

            reexec_with_huge_pages()
        run: Callable[[argparse.Namespace, TextIO], int] = args.run
        status = run(args, out)
        out.flush()
        return status
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except KeyboardInterrupt:
        _say("interrupted\n")
        return 130
    except OutputError as error:
        _discard_standard_output()
        if isinstance(error.cause, BrokenPipeError):
            return EXIT_OK  # the reader stopped reading (`| head`): not an error
        _say(f"error: cannot write to standard output: {error}\n")
        return EXIT_ERRORS
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the last line of defence: a bug, reported as one
        if (usage := _environment_error(exc)) is not None:
            _say(f"error: {usage}\n")
            return EXIT_USAGE
        _say(f"internal error: {type(exc).__name__}: {escape(str(exc))}\n"
             "this is a bug in capibara, not in your configuration; please report it with the "
             "input that caused it (rerun with CAPIBARA_TRACEBACK=1 for the traceback)\n")
        if os.environ.get("CAPIBARA_TRACEBACK"):
            import traceback

            traceback.print_exc()
        return EXIT_INTERNAL


def program() -> int:
    """The ``capibara`` program: the console script and ``python -m capibara``.

    Unlike a call of :func:`main` from other Python code, it may start the
    process again with the same command line (huge pages for ``capibara run``).
    """
    return main(as_program=True)


# --------------------------------------------------------------------------- output


class OutputError(Exception):
    """Standard output cannot be written: a full disk, a closed descriptor, a closed pipe."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(cause.strerror if isinstance(cause, OSError) and cause.strerror
                         else str(cause))
        self.cause = cause


class CheckedOutput:
    """A text stream whose write failures are :class:`OutputError`, so they are
    told apart from a bug; ``None`` (Python's stdout when descriptor 1 is closed)
    fails on the first write."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def write(self, text: Any) -> int:
        if self._stream is None:
            raise OutputError(OSError(errno.EBADF, "standard output is closed"))
        try:
            return self._stream.write(text)
        except (OSError, ValueError) as failure:  # ValueError: the stream was closed
            raise OutputError(failure) from failure

    def flush(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except (OSError, ValueError) as failure:
            raise OutputError(failure) from failure

    @property
    def buffer(self) -> "CheckedOutput":
        """The binary stream under the text one (``compile -o -`` writes msgpack there)."""
        return CheckedOutput(getattr(self._stream, "buffer"))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _discard_standard_output() -> None:
    """Point descriptor 1 at /dev/null, so the interpreter's last flush of what
    could not be written does not fail again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _say(text: str) -> None:
    """Write to standard error, which may itself be closed or full."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(text)
            sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _environment_error(exc: Exception) -> str | None:
    """A one-line usage error for an exception that a bad environment variable
    raised where it is read, or ``None`` for any other exception (a bug)."""
    from capibara.targets import UnknownTarget

    if isinstance(exc, UnknownTarget) and os.environ.get("CAPIBARA_HOST_TARGET"):
        near = ", ".join(f"`{s}`" for s in exc.suggestions)
        return ("CAPIBARA_HOST_TARGET does not name a known target"
                + (f" (did you mean {near}?)" if near else "")
                + "; `capibara targets` lists them, and unsetting it detects this host")
    return None
