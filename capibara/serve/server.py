"""Starting and stopping: build the model and the apps, listen, shut down gracefully.

On SIGTERM (or SIGINT) the servers stop accepting connections, let every
request in flight finish (streams included), stop the batcher once it has
nothing left, and :func:`run` returns 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from typing import Any, Mapping, TextIO

from capibara.diagnostics import ConfigError
from capibara.serve.service import (DEFAULT_MCP_RATE, ListenError, OptionError, ServeOptions,
                                    Service, startup_diagnostics)

__all__ = ["prepare", "run"]


def prepare(service: Service, options: ServeOptions,
            environ: Mapping[str, str] = os.environ) -> tuple[Any, ...]:
    """Check that the server may start (raises :class:`ConfigError` otherwise), then
    build the model and the batcher (not yet started). JAX is imported here."""
    diagnostics, keys = startup_diagnostics(service, options, environ)
    if diagnostics:
        raise ConfigError(diagnostics)
    from capibara.model import Model
    from capibara.runtime import load_plan
    from capibara.serve.auth import KeyRing, RateLimiter
    from capibara.serve.batching import Batcher, batch_limit, default_buckets
    from capibara.serve.hooks import load_hooks
    from capibara.serve.metrics import Metrics

    if not keys:  # keys may be given without being required (runtime updates need one)
        from capibara.serve.service import load_api_keys

        with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
            keys = load_api_keys(options, environ)
    compiled = load_plan(service.plan)
    model = Model.from_plan(compiled, config=service.config)
    spec_len = model.spec.max_seq_len
    if not 1 <= options.chunk_tokens < spec_len:
        raise OptionError(f"--chunk-tokens {options.chunk_tokens} must be in [1, {spec_len})")
    config = service.config
    plan_batch = compiled.plan.batch.global_size
    batches, lengths = default_buckets(batch_limit(config, plan_batch, 1 << 30), spec_len,
                                       options.chunk_tokens)
    batches = options.batch_buckets or batches
    lengths = options.length_buckets or lengths
    too_long = [n for n in lengths if n + options.chunk_tokens > spec_len]
    if too_long:
        raise OptionError(f"length bucket {too_long[0]} plus --chunk-tokens {options.chunk_tokens} "
                         f"is more than the model's max_seq_length {spec_len}")
    metrics = Metrics()
    batcher = Batcher(model, metrics, chunk_tokens=options.chunk_tokens, batch_buckets=batches,
                      length_buckets=lengths, window_s=options.batch_window_ms / 1e3,
                      plan_batch_size=plan_batch)
    ring = KeyRing(keys)
    limiter = RateLimiter(options.rate_limit) if options.rate_limit else None
    mcp_limiter = None
    if config.mcp_enabled and config.mcp_rate_limiting:
        mcp_limiter = RateLimiter(options.rate_limit or DEFAULT_MCP_RATE)
    tokenizer = None
    if options.tokenizer:
        from capibara.serve.tokenizer import Tokenizer

        tokenizer = Tokenizer(options.tokenizer)
    return (compiled, model, batcher, metrics, ring, limiter, mcp_limiter, tokenizer,
            load_hooks(service, options.hooks))


def _server(config: Any) -> Any:
    """A uvicorn server whose signals :func:`run` handles (two servers share one process)."""
    import uvicorn

    class SignalsHandledByRun(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            yield

    return SignalsHandledByRun(config)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise ListenError(error.errno, f"cannot listen on {host}:{port}: "
                          f"{error.strerror or error}") from None
    sock.setblocking(False)
    return sock


def run(service: Service, options: ServeOptions, *, out: TextIO = sys.stdout,
        environ: Mapping[str, str] = os.environ) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit status (0 after a graceful stop).

    Raises :class:`ConfigError` when a setting keeps the server from starting.
    """
    import uvicorn

    from capibara.serve.app import ServerState, build_app
    from capibara.serve.logs import configure_logging, server_logger

    config = service.config
    configure_logging(structured=config.structured_logging, level=config.log_level)
    (compiled, model, batcher, metrics, keys, limiter, mcp_limiter, tokenizer,
     hooks) = prepare(service, options, environ)
    log = server_logger()
    for note in [*compiled.notes, *model.notes]:
        log.info(note)
    state = ServerState(service, batcher, metrics, keys, limiter, tokenizer, hooks)
    ssl = {}
    scheme = "http"
    if config.request_encryption:
        ssl = {"ssl_certfile": options.tls_cert, "ssl_keyfile": options.tls_key}
        scheme = "https"
    main_socket = _listen(options.host, options.port)
    servers = [_server(uvicorn.Config(build_app(state), log_config=None, lifespan="off",
                                      access_log=False, **ssl))]
    sockets = [main_socket]
    port = main_socket.getsockname()[1]
    out.write(f"serving {compiled.plan.digest[:19]}… ({config.model_name}) on "
              f"{scheme}://{options.host}:{port} (warming up: {len(batcher.batch_buckets)} batch "
              f"x {len(batcher.length_buckets)} length buckets)\n")
    if config.mcp_enabled:
        from capibara.serve.mcp_server import build_mcp_app

        mcp_socket = _listen(options.host, options.mcp_port if options.mcp_port is not None
                             else config.mcp_port)
        servers.append(_server(uvicorn.Config(build_mcp_app(state, mcp_limiter),
                                              log_config=None, lifespan="on", access_log=False,
                                              **ssl)))
        sockets.append(mcp_socket)
        out.write(f"mcp        {scheme}://{options.host}:{mcp_socket.getsockname()[1]}/mcp\n")
    out.flush()
    batcher.start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()

        def stop() -> None:
            log.info("shutting down: finishing requests in flight")
            stopping.set()
            for server in servers:
                server.should_exit = True

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        checker = asyncio.create_task(_health_checks(state, stopping))
        await asyncio.gather(*(server.serve(sockets=[sock])
                               for server, sock in zip(servers, sockets)))
        checker.cancel()

    asyncio.run(main())
    batcher.close()
    batcher.join()
    log.info("stopped")
    return 0


async def _health_checks(state: Any, stopping: asyncio.Event) -> None:
    """Every ``health_check_interval`` seconds: is the batcher's thread alive?"""
    from capibara.serve.logs import server_logger

    log = server_logger()
    while not stopping.is_set():
        healthy = state.batcher.alive or not state.batcher.ready.is_set()
        if state.batcher.warmup_error is not None:
            healthy = False
        if not healthy and state.healthy:
            log.error("health check failed: the batching worker has stopped")
        state.healthy = healthy
        state.last_health_check = time.time()
        interval = max(1, int(state.config.health_check_interval))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)
