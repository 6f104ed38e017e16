"""Parafe notify package."""
