"""Thin route handlers, one module per API."""
