"""The plan verbs of the command line: ``compile``, ``diff``, ``explain PLAN``, and
plan files given to ``check``.

    capibara compile FILE... [-o PLAN] [--target T] [--set PATH=VALUE]... [--no-env]
                     [--format json|msgpack] [--print-after STAGE] [--time-stages]
                     [--message-format json]
    capibara diff A B          # plans or configs; exit 0 when equal, 1 when they differ
    capibara explain PLAN [PATH]

``compile`` writes ``STEM.plan.json`` in the working directory by default
(``-o -`` writes the plan to standard output, and then everything else goes
to standard error), and prints a one-screen summary.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import Any, Callable, Sequence, TextIO

from capibara.cli.output import print_diagnostics
from capibara.diagnostics import ConfigError, Diagnostic, escape

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2

#: Suffixes that make a file argument a plan rather than a config.
PLAN_SUFFIXES = (".plan.json", ".plan.msgpack", ".msgpack", ".mpk")


def is_plan_path(path: str) -> bool:
    """Whether ``path`` names a plan: by its suffix, or by its first bytes (a TOML file
    never starts with ``{``; a msgpack plan is a map holding ``format``), whatever its name."""
    if str(path).endswith(PLAN_SUFFIXES):
        return True
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    text = head.lstrip()
    if text.startswith(b"{"):
        return True
    return bool(head) and (0x80 <= head[0] <= 0x8f or head[0] in (0xde, 0xdf)) and b"format" in head


def add_verbs(verbs: Any, add_config_inputs: Callable[[argparse.ArgumentParser], None],
              add_message_format: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``compile`` and ``diff`` on the CLI's subparsers."""
    compile_ = verbs.add_parser("compile", help="compile configs into a plan (STEM.plan.json)")
    add_config_inputs(compile_)
    compile_.add_argument("-o", "--output", metavar="PLAN",
                          help="where to write the plan (`-` for standard output); default "
                               "STEM.plan.json in the working directory. The plan replaces "
                               "PLAN atomically; a symbolic link is followed (the file it "
                               "points at is replaced, the link stays), a dangling link is "
                               "not written through. Never written over: a config this "
                               "compile reads, a read-only file, or anything that is not a "
                               "regular file (a directory, a device such as /dev/null, a FIFO)")
    compile_.add_argument("--format", choices=("json", "msgpack"),
                          help="plan encoding (default: by the output's extension, else json)")
    compile_.add_argument("--print-after", metavar="STAGE",
                          help="print the compiler's state after STAGE: `lower` or a pass "
                               "(`capibara compile --print-after list` lists them)")
    compile_.add_argument("--time-stages", action="store_true",
                          help="print how long each stage took")
    add_message_format(compile_)
    compile_.set_defaults(run=run_compile)

    diff = verbs.add_parser("diff", help="what differs between two plans (or configs)")
    diff.add_argument("a", metavar="A", help="a plan file, or a config to compile")
    diff.add_argument("b", metavar="B", help="a plan file, or a config to compile")
    diff.add_argument("--target", metavar="NAME", help="target for configs given as A or B")
    diff.add_argument("--no-env", action="store_true",
                      help="ignore CAPIBARA_* variables when compiling configs")
    add_message_format(diff)
    diff.set_defaults(run=run_diff)


# --------------------------------------------------------------------------- compile


def _default_output(files: Sequence[str], fmt: str | None) -> str:
    stem = os.path.basename(files[0])
    for suffix in (".toml",):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return f"{stem}.plan.{'msgpack' if fmt == 'msgpack' else 'json'}"


def run_compile(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.compiler import check as pipeline
    from capibara.compiler.driver import STAGES, compile_sources
    from capibara.compiler.passes.registry import describe
    from capibara.plan import encode_plan, plan_format_for, summary

    if args.print_after is not None and args.print_after not in STAGES:
        # Checked here, not by argparse, so other verbs never import the compiler.
        known = ", ".join(f"`{s}`" for s in STAGES)
        if args.print_after != "list":
            sys.stderr.write(f"error: unknown stage `{escape(args.print_after)}`; "
                             f"the stages are {known}\n")
            return EXIT_USAGE
        out.write("\n".join(STAGES) + "\n")
        return EXIT_OK
    if args.output == "":
        sys.stderr.write("error: `-o` needs a path (or `-` for standard output)\n")
        return EXIT_USAGE
    to_stdout = args.output == "-"
    if to_stdout and args.format == "msgpack" and out.isatty():
        # as gzip does: binary on a terminal is garbage at best, control sequences at worst
        sys.stderr.write("error: a msgpack plan is binary and is not written to a terminal; "
                         "redirect standard output, or use `--format json`\n")
        return EXIT_USAGE
    # With the plan on standard output, everything a person reads goes to standard error.
    text: TextIO = sys.stderr if to_stdout else out

    def show(stage: str, ir: Any, seconds: float) -> None:
        if stage == args.print_after:
            text.write(escape(f"// after {stage}\n{describe(ir)}\n\n", keep_newlines=True))

    env = None if args.no_env else pipeline.ENVIRON
    result = compile_sources(args.files, target=args.target, env=env, overrides=args.overrides,
                             callback=show if args.print_after else None)
    print_diagnostics(result.diagnostics, args.message_format, text)
    if result.plan is None:
        _print_timings(args, result.timings, text)
        return EXIT_ERRORS
    plan = result.plan
    import time

    start = time.perf_counter()
    if to_stdout:
        fmt = args.format or "json"
        data = encode_plan(plan, fmt)
        stream = getattr(out, "buffer", None)
        if stream is not None:
            stream.write(data)
            stream.flush()
        else:
            out.write(data.decode("utf-8") if fmt == "json" else data.hex())
        where = "standard output"
    else:
        path = args.output or _default_output(args.files, args.format)
        refusal = output_refusal(path, args.files)
        if refusal is not None:
            print_diagnostics([refusal], args.message_format, text)
            return EXIT_ERRORS
        from capibara.files import TEMPORARY, remove_stale_temporaries, replace_atomically

        target = os.path.realpath(path) if os.path.islink(path) else path
        # replace_atomically names its temporaries as every atomic write here does
        remove_stale_temporaries(target, TEMPORARY)
        try:
            # as write_plan_file writes it, without the pathlib import its Path result costs
            replace_atomically(target, encode_plan(plan, plan_format_for(path, args.format)))
        except OSError as error:
            text.write(f"error: cannot write the plan to `{escape(path)}`: "
                       f"{error.strerror or error}\n")
            return EXIT_ERRORS
        where = path
    result.timings.append(("write", time.perf_counter() - start))
    if args.message_format == "human":
        text.write(escape(f"compiled {', '.join(args.files)} → {where}\n{summary(plan)}",
                          keep_newlines=True))
        for note in plan.notes:
            text.write(f"note: {note}\n")
    _print_timings(args, result.timings, text)
    return EXIT_OK


def output_refusal(path: str, inputs: Sequence[str]) -> Diagnostic | None:
    """Why the plan must not be written to ``path`` (a P004 error), or ``None``.

    The conventions of careful tools: a symbolic link is written through (as
    ``cp`` and editors do), but not a dangling one (GNU ``cp`` refuses those
    too); only a regular file is replaced, never a device, FIFO or directory;
    a read-only file is left alone (``cp`` fails there rather than forcing);
    and no input of the same run is overwritten.
    """
    from capibara.config.sources import config_path
    from capibara.files import describe_kind, is_writable

    def refuse(reason: str, help: str) -> Diagnostic:
        return Diagnostic.error("P004", f"refusing to write the plan to `{path}`: {reason}",
                                help=help)

    elsewhere = "write the plan elsewhere, e.g. `-o NAME.plan.json`"
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        info = os.stat(target)
    except FileNotFoundError:
        if os.path.islink(path):
            return refuse(f"it is a symbolic link to `{os.readlink(path)}`, which does not "
                          "exist", "remove the link, or point it at an existing plan file")
        return None
    except OSError as error:
        return refuse(error.strerror or str(error), elsewhere)
    if not stat.S_ISREG(info.st_mode):
        return refuse(f"it is {describe_kind(info.st_mode)}, not a regular file", elsewhere)
    for given in inputs:
        found = config_path(given)
        try:
            same = found is not None and os.path.samefile(found, target)
        except OSError:
            same = False
        if same:
            return refuse(f"that is the config `{given}` this compile reads",
                          f"{elsewhere}; the config would be lost")
    if not is_writable(target, info):
        return refuse("it is read-only", f"{elsewhere}, or make it writable if it should "
                                         "be replaced")
    return None


def _print_timings(args: argparse.Namespace, timings: Sequence[tuple[str, float]], text: TextIO) -> None:
    if not args.time_stages:
        return
    width = max((len(stage) for stage, _ in timings), default=5)
    text.write("stage times\n")
    for stage, seconds in timings:
        text.write(f"  {stage:<{width}}  {seconds * 1e3:8.3f} ms\n")
    text.write(f"  {'total':<{width}}  {sum(s for _, s in timings) * 1e3:8.3f} ms\n")


# --------------------------------------------------------------------------- diff


def _plan_or_compile(path: str, args: argparse.Namespace) -> Any:
    """A plan from a plan file, or by compiling a config file; raises ConfigError."""
    from capibara.compiler import check as pipeline
    from capibara.compiler.driver import compile_sources
    from capibara.plan import load_plan_file

    if is_plan_path(path):
        return load_plan_file(path)
    env = None if args.no_env else pipeline.ENVIRON
    result = compile_sources([path], target=args.target, env=env)
    if result.plan is None:
        raise ConfigError(result.diagnostics)
    return result.plan


def run_diff(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.plan import diff_plans, format_changes

    try:
        a = _plan_or_compile(args.a, args)
        b = _plan_or_compile(args.b, args)
    except ConfigError as error:
        print_diagnostics(error.diagnostics, args.message_format, out)
        return EXIT_ERRORS
    changes = diff_plans(a, b)
    if args.message_format == "json":
        import msgspec

        for change in changes:
            out.write(msgspec.json.encode(change).decode() + "\n")
    else:
        out.write(escape(format_changes(changes), keep_newlines=True) if changes
                  else "no differences\n")
    return EXIT_ERRORS if changes else EXIT_OK


# --------------------------------------------------------------------------- explain PLAN


def explain_plan_file(path: str, field: str | None, out: TextIO) -> int:
    """``capibara explain PLAN [PATH]``."""
    from capibara.plan import explain_plan, load_plan_file

    try:
        plan = load_plan_file(path)
    except ConfigError as error:
        print_diagnostics(error.diagnostics, "human", out)
        return EXIT_ERRORS
    try:
        out.write(escape(explain_plan(plan, field), keep_newlines=True))
    except KeyError as error:
        near = error.args[1] if len(error.args) > 1 else []
        hint = f" (did you mean {', '.join(f'`{n}`' for n in near)}?)" if near else ""
        sys.stderr.write(f"error: `{escape(field)}` is not a path in `{escape(path)}`"
                         f"{escape(hint)}\n")
        return EXIT_USAGE
    return EXIT_OK


# --------------------------------------------------------------------------- check PLAN


def split_plan_files(files: Sequence[str]) -> tuple[list[str], list[Diagnostic]]:
    """Verify the plan files among ``files`` (format, digest, compiler); return the
    config files left and the diagnostics of the plans that were refused."""
    configs: list[str] = []
    found: list[Diagnostic] = []
    for path in files:
        if not is_plan_path(path):
            configs.append(path)
            continue
        from capibara.plan import load_plan_file  # only when a plan is named: ~10 ms to import

        try:
            load_plan_file(path)
        except ConfigError as error:
            found.extend(error.diagnostics)
    return configs, found


def plan_exists(path: str) -> bool:
    """Whether ``explain`` should read ``path`` as a plan file rather than a code."""
    return is_plan_path(path) or (os.path.sep in path and os.path.isfile(path))
