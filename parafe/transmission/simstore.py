"""Durable state of the simulators (the "remote side" of Helios, Digiposte, Maileva and the vault).

Each simulator keeps what it received under ``$PARAFE_HOME/simulators/<name>/``: one JSON receipt and one data
file per transmission key. The receipt is created with ``O_EXCL`` (the first sender wins), so a transmission
sent twice — a worker killed after the send and before its commit, then retried — is received once; the second
send is answered with the first receipt and counted in ``<key>.dup``.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Receipt:
    key: str
    remote_id: str
    received_at: float
    info: dict[str, Any]
    duplicate: bool = False


class SimStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / f"{_SAFE.sub('_', key)}{suffix}"

    def receive(self, key: str, data: bytes, info: dict[str, Any]) -> Receipt:
        """Store a transmission once; a repeated key returns the first receipt (``duplicate=True``)."""
        receipt_path = self._path(key, ".json")
        existing = self.get(key)
        if existing is not None:
            return self._duplicate(existing)
        data_path = self._path(key, ".data")
        tmp = data_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, data_path)
        record = {"key": key, "remote_id": f"SIM-{_SAFE.sub('_', key)}", "received_at": time.time(), "info": info}
        try:
            fd = os.open(receipt_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            first = self.get(key)
            assert first is not None
            return self._duplicate(first)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return Receipt(key, str(record["remote_id"]), float(record["received_at"]), info)  # type: ignore[arg-type]

    def _duplicate(self, first: Receipt) -> Receipt:
        with open(self._path(first.key, ".dup"), "a", encoding="utf-8") as fh:
            fh.write(f"{time.time()}\n")
        return Receipt(first.key, first.remote_id, first.received_at, first.info, duplicate=True)

    def get(self, key: str) -> Receipt | None:
        path = self._path(key, ".json")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return Receipt(record["key"], record["remote_id"], float(record["received_at"]), dict(record["info"]))

    def by_remote_id(self, remote_id: str) -> Receipt | None:
        prefix = "SIM-"
        return self.get(remote_id[len(prefix):]) if remote_id.startswith(prefix) else None

    def data(self, key: str) -> bytes:
        return self._path(key, ".data").read_bytes()

    def receipts(self) -> list[Receipt]:
        out = []
        for path in sorted(self.root.glob("*.json")):
            receipt = self.get(path.stem)
            if receipt is not None:
                out.append(receipt)
        return out

    def duplicates(self, key: str) -> int:
        path = self._path(key, ".dup")
        return len(path.read_text().splitlines()) if path.exists() else 0
