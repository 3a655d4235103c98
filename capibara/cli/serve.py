"""``capibara serve PLAN_OR_CONFIG``: serve a compiled model over HTTP (see :mod:`capibara.serve`).

    capibara serve demo.plan.json [--host 127.0.0.1] [--port 8000] [--tokenizer FILE.model]

Settings that keep the server from starting (TLS without a certificate, a
safety setting without its hook, API keys required and none given) are
printed as diagnostics, exit status 1, before any model is built.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from capibara.diagnostics import ConfigError

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes separated by commas, got {text!r}")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def add_verb(verbs: Any, add_message_format) -> None:
    from capibara.serve.names import API_KEYS_ENV, HOOKS

    serve = verbs.add_parser("serve", help="serve a plan (or config) over HTTP: completions, "
                                           "metrics, runtime updates, MCP")
    serve.add_argument("file", metavar="PLAN_OR_CONFIG")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000,
                       help="HTTP port (8000; 0 picks a free one)")
    serve.add_argument("--tokenizer", metavar="FILE.model",
                       help="SentencePiece model for text; without it only token IDs are served")
    serve.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="PATH=VALUE",
                       help="override a field (for a plan: runtime-mutable fields only)")
    serve.add_argument("--target", metavar="NAME", help="compile a config for this target")
    serve.add_argument("--no-env", action="store_true", help="ignore CAPIBARA_* config variables")
    serve.add_argument("--api-key-env", default=API_KEYS_ENV, metavar="NAME",
                       help="environment variable holding API keys, comma-separated "
                            f"({API_KEYS_ENV})")
    serve.add_argument("--api-key-file", metavar="FILE", help="API keys, one per line")
    serve.add_argument("--tls-cert", metavar="CERT.pem",
                       help="TLS certificate (request_encryption)")
    serve.add_argument("--tls-key", metavar="KEY.pem", help="TLS private key (request_encryption)")
    serve.add_argument("--rate-limit", type=float, metavar="N",
                       help="requests per minute per API key (per client without keys)")
    for hook in HOOKS:
        serve.add_argument(f"--{hook.option}", metavar="MODULE:FUNCTION",
                           help=f"your code for `{hook.field}`: {hook.contract}")
    serve.add_argument("--chunk-tokens", type=int, default=8, metavar="N",
                       help="tokens generated per batching round (the streaming step; 8)")
    serve.add_argument("--batch-window-ms", type=float, default=5.0, metavar="MS",
                       help="longest wait for more requests before a round (5)")
    serve.add_argument("--batch-buckets", type=_sizes, metavar="B1,B2,...",
                       help="padded batch sizes compiled at warm-up")
    serve.add_argument("--length-buckets", type=_sizes, metavar="L1,L2,...",
                       help="padded context lengths compiled at warm-up")
    serve.add_argument("--mcp-port", type=int, metavar="PORT",
                       help="MCP port instead of the plan's `mcp_port` (0 picks a free one)")
    add_message_format(serve)
    # As `capibara run`: glibc reads its tunables at start-up, so the command
    # re-executes itself with huge pages for XLA's buffers (capibara.hugepages).
    serve.set_defaults(run=run_serve, huge_pages=True)


def run_serve(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.compiler import check as pipeline
    from capibara.cli.output import print_diagnostics
    from capibara.serve.names import HOOKS
    from capibara.serve.service import ListenError, OptionError, ServeOptions, load_service

    hooks = {hook.option: getattr(args, hook.option.replace("-", "_")) for hook in HOOKS
             if getattr(args, hook.option.replace("-", "_"))}
    options = ServeOptions(
        host=args.host, port=args.port, tokenizer=args.tokenizer, api_key_env=args.api_key_env,
        api_key_file=args.api_key_file, tls_cert=args.tls_cert, tls_key=args.tls_key,
        hooks=hooks, rate_limit=args.rate_limit, chunk_tokens=args.chunk_tokens,
        batch_window_ms=args.batch_window_ms, batch_buckets=args.batch_buckets,
        length_buckets=args.length_buckets, mcp_port=args.mcp_port)
    if args.rate_limit is not None and args.rate_limit <= 0:
        sys.stderr.write("error: --rate-limit must be positive\n")
        return EXIT_USAGE
    try:
        service = load_service(args.file, overrides=args.overrides, target=args.target,
                               env=None if args.no_env else pipeline.ENVIRON)
        from capibara.serve.server import run

        return run(service, options, out=out, environ=pipeline.ENVIRON)
    except ConfigError as error:
        print_diagnostics(error.diagnostics, args.message_format, sys.stderr)
        return EXIT_ERRORS
    except OptionError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_USAGE
    except ListenError as error:
        sys.stderr.write(f"error: {error.strerror}\n")
        return EXIT_ERRORS
