"""Tests of the Cursor API sandbox."""
