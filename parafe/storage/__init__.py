"""Parafe storage package."""
