"""koalr_sandbox."""
