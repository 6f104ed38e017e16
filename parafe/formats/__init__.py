"""Parafe formats package."""
