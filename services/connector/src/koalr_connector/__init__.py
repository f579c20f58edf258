"""koalr_connector."""
