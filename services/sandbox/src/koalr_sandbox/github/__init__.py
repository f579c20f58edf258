"""The GitHub Copilot half of the sandbox: seats, billing, usage-metrics reports, premium requests."""
