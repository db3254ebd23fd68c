"""The web gallery: static files (no build step) served by `serve` at `/`."""
