"""③ The catalog: schema, migrations and queries; every mutation logs a change row."""

from gallerysync.catalog.db import DEFAULT_OWNER, Catalog, WriteTx

__all__ = ["DEFAULT_OWNER", "Catalog", "WriteTx"]
