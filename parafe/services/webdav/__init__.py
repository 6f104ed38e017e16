"""The WebDAV drop folders, independent of the WebDAV library."""
