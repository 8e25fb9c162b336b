"""Consumers of riskd's Redis output: an alerting bot and a hedger (see examples/README.md)."""
