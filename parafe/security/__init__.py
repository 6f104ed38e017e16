"""Parafe security package."""
