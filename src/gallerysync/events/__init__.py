"""④ Fan-out of committed changes to live readers."""
