"""The wire protocol between a programmer's telemetry head and the pump (docs/wire-protocol.md)."""
