"""Tests of the connector service."""
