"""The portal's read models and its subscriber administration."""
