"""Who is calling and what they may see: authentication, rights, login throttling."""
