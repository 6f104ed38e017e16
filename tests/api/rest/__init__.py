"""API tests of the REST connector against the real server over TLS."""
