"""Parafe domain package."""
