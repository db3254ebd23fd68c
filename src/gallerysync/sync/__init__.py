"""② Sync: march what sources report against the catalog and apply the difference."""
