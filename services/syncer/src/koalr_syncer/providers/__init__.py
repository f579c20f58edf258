"""Provider clients and the shapes of their answers."""
