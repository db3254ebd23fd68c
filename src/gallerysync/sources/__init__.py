"""① Sources: where images come from. One folder per kind."""
