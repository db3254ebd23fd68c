"""③ Content-addressed blob store (BLAKE3-256) and derived thumbnails."""
