"""Administration of subscribers, users and sandbox subscribers."""
