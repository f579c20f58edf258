"""The operator command line ``koalr`` (see docs/operators.md)."""
