"""Parafe signing package."""
