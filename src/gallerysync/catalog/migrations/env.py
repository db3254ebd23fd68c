"""Alembic environment: runs on the connection that `gallerysync.catalog.engine` hands over.

Migrations are applied by `gallerysync` itself at start-up (`migrate()`); the `alembic` command
line is not needed by users.
"""

from __future__ import annotations

from alembic import context

from gallerysync.catalog.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when run through the alembic CLI
    raise SystemExit("run migrations through gallerysync (gallerysync.catalog.engine.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
