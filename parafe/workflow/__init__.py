"""Parafe workflow package."""
