"""`gallerysync push`: a folder's images to a server through a persistent queue (DESIGN §5)."""
