"""HTTP plumbing shared by the connectors and the portal (request bodies…): no routes, no wire format of its own.

It sits between the front doors (``parafe.connectors``, ``parafe.portal``) and the use cases (``parafe.services``)
in the layers contract of pyproject.toml: both front doors import it, it imports only what lies below.
"""
