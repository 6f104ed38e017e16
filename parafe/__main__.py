"""Allows `python -m parafe`."""

from parafe.cli import main

raise SystemExit(main())
