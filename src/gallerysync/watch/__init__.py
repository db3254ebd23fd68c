"""File watching with write-settle, and the ignore rules shared by folder sources and push."""
