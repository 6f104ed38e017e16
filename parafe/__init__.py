"""Parafe: an open-source parapheur électronique, wire-compatible with DOCAPOSTE FAST-Parapheur."""

__version__ = "0.1.0"
