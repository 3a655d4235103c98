"""Test support shipped with the package: hypothesis strategies for TOML and configs."""
