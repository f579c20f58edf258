"""Provider clients used to validate credentials and detect plans at connect time."""
