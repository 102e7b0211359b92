"""Alembic's environment, run by `f1_assets.migrations.upgrade` on the connection it hands over (the
caller holds the PostgreSQL advisory lock): no alembic.ini, no URL here. Each step runs in its own
transaction together with its version update."""

from alembic import context

context.configure(connection=context.config.attributes["connection"], transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
