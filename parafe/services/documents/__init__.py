"""The document core shared by every connector: deposit, downloads, metadata, history, search, deletion."""
