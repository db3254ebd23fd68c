"""gallerysync: one catalog of image galleries from folders and remote servers, kept true."""

__version__ = "0.1.0"
