"""Parafe portal package."""
