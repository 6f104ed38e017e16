"""Parafe reports package."""
