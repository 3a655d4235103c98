"""The server's Prometheus metrics, served at the plan's ``metrics_endpoint``.

Each server has its own registry, so two servers in one process (tests) never
share counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Counters, gauges and histograms of one server (names start ``capibara_``)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("capibara_requests", "HTTP requests by endpoint and status",
                                ("endpoint", "status"), registry=registry)
        self.latency = Histogram("capibara_request_latency_seconds",
                                 "time from request to last byte, by endpoint", ("endpoint",),
                                 buckets=_LATENCY_BUCKETS, registry=registry)
        self.tokens_generated = Counter("capibara_tokens_generated",
                                        "tokens generated for requests", registry=registry)
        self.prompt_tokens = Counter("capibara_prompt_tokens", "prompt tokens received",
                                     registry=registry)
        self.batch_size = Histogram("capibara_batch_size", "requests per batching round",
                                    buckets=_BATCH_BUCKETS, registry=registry)
        self.padded_batch_size = Histogram("capibara_padded_batch_size",
                                           "rows per batching round after padding to a bucket",
                                           buckets=_BATCH_BUCKETS, registry=registry)
        self.queue_depth = Gauge("capibara_queue_depth", "requests waiting to join a batch",
                                 registry=registry)
        self.active = Gauge("capibara_active_sequences", "requests being generated",
                            registry=registry)
        self.compilations = Counter("capibara_compilations",
                                    "programs compiled, by phase (warmup or serving)", ("phase",),
                                    registry=registry)
        self.compile_seconds = Counter("capibara_compile_seconds",
                                       "seconds spent in rounds that compiled", ("phase",),
                                       registry=registry)
        self.round_seconds = Histogram("capibara_round_seconds",
                                       "time of one batching round (performance_profiling)",
                                       buckets=_LATENCY_BUCKETS, registry=registry)
        self.batch_window = Gauge("capibara_batch_window_seconds",
                                  "the current batching window", registry=registry)
        self.ready = Gauge("capibara_ready", "1 once warm-up has finished", registry=registry)
        self.runtime_updates = Counter("capibara_runtime_updates", "runtime updates by outcome",
                                       ("outcome",), registry=registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
