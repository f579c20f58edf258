"""A seeded stand-in for the Cursor Admin and Analytics APIs that knows the exact answers."""
