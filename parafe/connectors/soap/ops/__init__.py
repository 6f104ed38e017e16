"""The 31 SOAP operations: one small module per family, each handler a thin adapter to :mod:`parafe.services`.

A handler receives a :class:`Call` (context, principal, decoded request values named as in the WSDL) and
returns the response values (``{"return": …}``), or raises :class:`~parafe.domain.errors.ParafeError`.
Handlers run in a worker thread; services are synchronous.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parafe.connectors.soap.envelope import Binary, bad_request
from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Principal
from parafe.services.documents.deposit import Upload


@dataclass
class Call:
    ctx: AppContext
    principal: Principal
    operation: str
    values: dict[str, Any]
    base_url: str = ""  # scheme://host of the request, for URLs handed back to clients
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if value is None or not value.strip():
            raise bad_request(f"le paramètre « {name} » est obligatoire")
        return value.strip()

    def document_id(self, name: str = "documentId") -> str:
        """The document id parameter ("" when absent: the service answers it like an unknown id, D1)."""
        value = self.values.get(name)
        return "" if value is None else str(value).strip()

    def flag(self, name: str) -> bool:
        value = self.text(name)
        return value is not None and value.strip().lower() in ("true", "1", "oui", "yes")

    def small_binary(self, name: str) -> bytes | None:
        """The bytes of a small ``base64Binary`` parameter (pictograms), ``None`` when absent or empty."""
        value = self.values.get(name)
        return value.path.read_bytes() if isinstance(value, Binary) and value.size else None

    def file(self, name: str, values: dict[str, Any] | None = None) -> Upload | None:
        """A ``dataFileVO`` parameter as an :class:`Upload` (``None`` when the element is absent)."""
        vo = (values if values is not None else self.values).get(name)
        if vo is None:
            return None
        return data_file_upload(vo)


def data_file_upload(vo: dict[str, Any]) -> Upload:
    binary: Binary | None = vo.get("dataHandler")
    filename = vo.get("filename") or ""
    if binary is None:
        raise ParafeError(E.EMPTY_FILE, detail="dataHandler missing")
    return Upload(path=binary.path, sha256=binary.sha256, size=binary.size, filename=filename)


MODULES = ("admin", "documents", "metadata", "otp", "returns", "search")
Handler = Callable[[Call], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        if name in HANDLERS:
            raise RuntimeError(f"SOAP operation {name} registered twice")
        HANDLERS[name] = func
        return func
    return register


def load_all() -> dict[str, Handler]:
    """Import every operation module (registration happens at import) and return the handlers."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return HANDLERS
