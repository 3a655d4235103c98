"""Rules on services, security and monitoring."""

from __future__ import annotations

from typing import Iterator

from capibara.config.fields import SECURITY_SWITCHES
from capibara.config.validate.engine import (ERROR, WARNING, Finding, RuleContext, assignment_text,
                                             default_of, field_names, field_path, join_words, rule,
                                             verb_are)


@rule(43, "V043", ERROR, ("elixir_bridge_port", "mcp_port", "mcp_enabled", "meta_loop_enabled"))
def service_ports(ctx: RuleContext) -> Iterator[Finding]:
    """Two servers cannot share a port; ports below 1024 are privileged."""
    if ctx.mcp_enabled and ctx.meta_loop_enabled and ctx.mcp_port == ctx.elixir_bridge_port:
        yield Finding(
            f"`mcp_port` and `elixir_bridge_port` are both {ctx.mcp_port}: two servers cannot "
            "bind one port", ("elixir_bridge_port", "mcp_port"),
            {"elixir_bridge_port": "the Meta Loop bridge", "mcp_port": "the MCP server"},
            help=f"use different ports (the defaults are {default_of('mcp_port')} and "
                 f"{default_of('elixir_bridge_port')})")
    for switch, port in (("mcp_enabled", "mcp_port"), ("meta_loop_enabled", "elixir_bridge_port")):
        value = getattr(ctx.config, port)
        if getattr(ctx.config, switch) and value < 1024:
            yield Finding(
                f"`{port}` {value} is a privileged port: binding it needs root",
                (port,), {port: "below 1024"},
                help=f"use a port of 1024 or more (default {default_of(port)})", severity=WARNING)


@rule(44, "V044", WARNING, ("mcp_port", "mcp_auth_required", "mcp_rate_limiting", "mcp_enabled"))
def mcp_settings_without_mcp(ctx: RuleContext) -> Iterator[Finding]:
    """MCP sub-settings are ignored while MCP is off."""
    if ctx.mcp_enabled:
        return
    ignored = [n for n in ("mcp_port", "mcp_auth_required", "mcp_rate_limiting")
               if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{field_names(ignored)} {verb_are(ignored)} ignored: `mcp_enabled` is false",
            (*ignored, "mcp_enabled"), {**{n: "ignored" for n in ignored}, "mcp_enabled": "off"},
            help=f"set {assignment_text('mcp_enabled', True)}, or remove {'them' if len(ignored) > 1 else 'it'}")


@rule(45, "V045", WARNING, ("ethics_guard_enabled", "rag_hub_enabled", "meta_loop_enabled"))
def meta_loop_parts_without_meta_loop(ctx: RuleContext) -> Iterator[Finding]:
    """The ethics guard and RAG Hub run inside Meta Loop."""
    if ctx.meta_loop_enabled:
        return
    on = [n for n in ("ethics_guard_enabled", "rag_hub_enabled")
          if getattr(ctx.config, n) and ctx.explicit(n)]
    if on:
        yield Finding(
            f"{field_names(on)} {'is' if len(on) == 1 else 'are'} not running: "
            f"{'it is' if len(on) == 1 else 'they are'} part of Meta Loop, and "
            "`meta_loop_enabled` is false", (*on, "meta_loop_enabled"),
            {**{n: "not running" for n in on}, "meta_loop_enabled": "off"},
            help=f"set {assignment_text('meta_loop_enabled', True)}",
            notes=("`content_safety_check` and `output_filtering` still apply without Meta Loop",))


@rule(46, "V046", WARNING, ("mcp_auth_required", "mcp_enabled"))
def mcp_without_auth(ctx: RuleContext) -> Iterator[Finding]:
    """An MCP server without authentication."""
    if ctx.mcp_enabled and not ctx.mcp_auth_required:
        yield Finding(
            f"the MCP server on port {ctx.mcp_port} accepts unauthenticated requests",
            ("mcp_auth_required", "mcp_enabled"), {"mcp_auth_required": "no authentication"},
            help=f"set {assignment_text('mcp_auth_required', True)}")


@rule(47, "V047", ERROR, (*SECURITY_SWITCHES, "security_level"))
def high_security_is_not_weakened(ctx: RuleContext) -> Iterator[Finding]:
    """`security_level = "high"` with a security switch turned off."""
    if ctx.security_level != "high":
        return
    off = [n for n in SECURITY_SWITCHES if getattr(ctx.config, n) is False]
    if off:
        yield Finding(
            f"`security_level` \"high\" needs {field_names(off)} on",
            (*off, "security_level"),
            {**{n: "turned off" for n in off}, "security_level": "the high preset"},
            help=f"remove {'these settings' if len(off) > 1 else field_names([field_path(off[0])])} "
                 f"(the preset turns {'them' if len(off) > 1 else 'it'} on), or use "
                 f"{assignment_text('security_level', 'standard')}")


@rule(48, "V048", WARNING, ("sensitive_data_masking", "log_level", "debug_mode", "jax_debug_mode"))
def debug_logging_without_masking(ctx: RuleContext) -> Iterator[Finding]:
    """Debug output without masking can leak sensitive data."""
    if ctx.sensitive_data_masking:
        return
    verbose = [n for n in ("log_level", "debug_mode", "jax_debug_mode")
               if (ctx.log_level == "DEBUG" if n == "log_level" else getattr(ctx.config, n))]
    if verbose:
        said = [f"`{n}` \"DEBUG\"" if n == "log_level" else f"`{n}`" for n in verbose]
        yield Finding(
            f"{join_words(said)} with `sensitive_data_masking` off may write sensitive data to the "
            "logs", ("sensitive_data_masking", *verbose),
            {"sensitive_data_masking": "masking off", **{n: "verbose" for n in verbose}},
            help=f"set {assignment_text('sensitive_data_masking', True)}")


@rule(49, "V049", WARNING, ("metrics_endpoint", "health_check_interval", "performance_profiling",
                            "monitoring_enabled"))
def monitoring_settings_without_monitoring(ctx: RuleContext) -> Iterator[Finding]:
    """Monitoring sub-settings are ignored while monitoring is off."""
    if ctx.monitoring_enabled:
        return
    ignored = [n for n in ("metrics_endpoint", "health_check_interval", "performance_profiling")
               if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{field_names(ignored)} {verb_are(ignored)} ignored: `monitoring_enabled` is false",
            (*ignored, "monitoring_enabled"),
            {**{n: "ignored" for n in ignored}, "monitoring_enabled": "off"},
            help=f"set {assignment_text('monitoring_enabled', True)}")
