"""OSS, the server-signature service (spec §3), independent of the parapheur workflow."""
