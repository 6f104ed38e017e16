"""Parafe db package."""
