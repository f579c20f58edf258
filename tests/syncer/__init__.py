"""Tests of the syncer service."""
