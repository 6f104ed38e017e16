"""Parafe transmission package."""
