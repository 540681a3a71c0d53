"""What tests and benchmarks share: test speech, a scripted transport, a WebRTC client, fakes.

Neither ``tests/`` nor ``bench/`` owns it, and the product never imports it (import-linter
contracts in pyproject.toml).
"""
