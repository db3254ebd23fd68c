"""④ The HTTP API. It reads and writes through the catalog's functions, never raw SQL."""
