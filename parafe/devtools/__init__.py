"""Developer and operator tools that are not part of the service: the chaos scenario (``parafe dev chaos``), the
S3 server with fault injection it runs."""
