"""koalr_metrics."""
