"""Run the whole system as separate processes on one machine (demo, end-to-end tests, benchmarks).

Never imported by the services themselves.
"""
