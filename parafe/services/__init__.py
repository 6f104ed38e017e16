"""Parafe services package."""
