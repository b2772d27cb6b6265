"""Fixtures every test directory can use."""

from tests.pg import pg_server_url, pg_url, store_url  # noqa: F401 - fixtures
