"""koalr_syncer."""
