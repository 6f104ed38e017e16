"""Parafe connectors package."""
