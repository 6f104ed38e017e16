"""HTTPS server: uvicorn with TLS client-certificate support (embedded mode)."""
