"""Parafe jobs package."""
