"""``ParafeClient``: REST v2 of Parafe with the client certificate (httpx), typed results, streamed uploads
and downloads, back-off, and retries that never duplicate a deposit.

Retries:

- reads (history, lists, downloads) are retried on transport errors with exponential back-off;
- a deposit whose answer is lost (connection cut, timeout after the body was sent) may have been stored: before
  posting again the client looks the document up by its (circuit, label, name) triplet through the search
  API — a live triplet is unique (spec §2.6.2) — and returns the id found. That is why :meth:`upload` always
  sends a label: the caller's, or the day's date (AAAA-MM-JJ, Europe/Paris) as the server would choose. When
  the lost attempt is still being processed as the client looks, the new post is refused as « Doublon » (144,
  the triplet is taken): the client then looks again and returns the id found;
- answers of the server (4xx, 5xx with the JSON error shape) are never retried: they raise
  :class:`ParafeClientError` with the server's French message and catalogue code.
"""

from __future__ import annotations

import mimetypes
import os
import re
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import httpx

from parafe.client.types import RETURN_KINDS, Circuit, DocumentStatus, HistoryEntry
from parafe.domain.deposit import default_label
from parafe.domain.errors import E, ErrorDef
from parafe.domain.states import FINISHED, LABEL_SETS, SEARCH_CODES, State

REST_PATH = "/parapheur-ws/rest/v1"
Progress = Callable[[int, int], None]  # (bytes sent, total)

# the states after which a document changes no more; not « Échec du traitement »: an administrator's retry
# resumes the circuit, so wait_until keeps waiting (and its timeout names that state)
FINAL_STATES = FINISHED


def _labels(states: Iterable[State]) -> frozenset[str]:
    return frozenset(labels[s] for s in states for labels in LABEL_SETS.values())


FINAL_LABELS = _labels(FINAL_STATES)


def labels_for(state: str) -> frozenset[str]:
    """The history labels a wanted state stands for: a search code (``Signed``, any case), a history label
    (« Signé ») or an internal state value (``signed``)."""
    for code, states in SEARCH_CODES.items():
        if code.lower() == state.strip().lower():
            return _labels(states)
    for value in State:
        if value.value == state.strip():
            return _labels([value])
    every = _labels(State)
    if state.strip() in every:
        return frozenset({state.strip()})
    raise ParafeClientError.of(E.CLIENT_STATE_UNKNOWN, state=state,
                               states=", ".join(sorted(SEARCH_CODES)) + " ou un libellé d'historique")


class ParafeClientError(Exception):
    """An error of the server (its catalogue code and French message) or of the client itself."""

    def __init__(self, code: int, message: str, status: int | None = None, developer: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.developer = developer

    @classmethod
    def of(cls, error: ErrorDef, **params: Any) -> ParafeClientError:
        return cls(error.code, error.format(**params), error.http_status, error.developer)


class _ProgressReader:
    """A file object that reports how much of it was read (httpx reads multipart files in chunks)."""

    def __init__(self, fh: IO[bytes], total: int, progress: Progress | None) -> None:
        self.fh = fh
        self.total = total
        self.done = 0
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        chunk = self.fh.read(size)
        self.done += len(chunk)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.fh.seek(offset, whence)
        self.done = position
        return position

    def tell(self) -> int:
        return self.fh.tell()

    def fileno(self) -> int:
        return self.fh.fileno()


class ParafeClient:
    """A connection to one Parafe server as one client certificate.

    ``url``: the server's base address (``https://parapheur.example.fr``); ``cert``: (PEM certificate, PEM key)
    paths; ``ca``: the CA bundle that signed the server's certificate (default: the system's).
    """

    def __init__(self, url: str, *, cert: tuple[str, str] | None = None, ca: str | None = None,
                 timeout: float = 120.0, retries: int = 3, backoff: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        if cert is not None:
            try:
                context.load_cert_chain(cert[0], cert[1])
            except (OSError, ssl.SSLError) as exc:
                raise ParafeClientError.of(E.CLIENT_FILE_UNREADABLE, path=cert[0], reason=str(exc)) from None
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.sandbox = False  # the last answer carried X-Parafe-Sandbox: 1
        self._http = httpx.Client(base_url=self.url + REST_PATH, verify=context,
                                  timeout=httpx.Timeout(timeout, connect=15.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ParafeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing

    def _check(self, response: httpx.Response) -> httpx.Response:
        self.sandbox = response.headers.get("x-parafe-sandbox") == "1"
        if response.status_code < 400:
            return response
        try:
            response.read()
            body = response.json()
            raise ParafeClientError(int(body["errorCode"]), str(body["userFriendlyMessage"]), response.status_code,
                                    str(body.get("developerMessage", "")))
        except (ValueError, KeyError, TypeError):
            raise ParafeClientError.of(E.CLIENT_UNEXPECTED_ANSWER,
                                       reason=f"HTTP {response.status_code}") from None

    def _unreachable(self, exc: Exception) -> ParafeClientError:
        return ParafeClientError.of(E.CLIENT_SERVER_UNREACHABLE, url=self.url, reason=str(exc) or type(exc).__name__)

    def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        """A read, retried on transport errors with exponential back-off."""
        for attempt in range(self.retries + 1):
            try:
                return self._check(self._http.get(path, **kwargs))
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise self._unreachable(exc) from None
                self.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def _json(self, path: str, **kwargs: Any) -> Any:
        response = self._get(path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ParafeClientError.of(E.CLIENT_UNEXPECTED_ANSWER, reason="JSON attendu") from None

    # --- circuits and search

    def circuits(self, siren: str) -> list[Circuit]:
        return [Circuit.from_json(c) for c in self._json(f"/documents/v2/{siren}/circuits")]

    def search(self, siren: str, **criteria: str) -> list[int]:
        """Document ids matching the criteria of the search API (``circuit``, ``label``, ``filename``,
        ``state``…)."""
        body = {"siren": siren, **criteria}
        for attempt in range(self.retries + 1):
            try:
                ids = self._check(self._http.post("/documents/search", json=body)).json()
                return [int(i) for i in ids]
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise self._unreachable(exc) from None
                self.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def find(self, siren: str, circuit: str, label: str, name: str) -> int | None:
        """The live document of a (circuit, label, name) triplet, None when there is none."""
        ids = self.search(siren, circuit=circuit, label=label, filename=name)
        return max(ids) if ids else None

    # --- deposit

    def upload(self, siren: str, circuit: str, path: str | os.PathLike[str], *, label: str | None = None,
               comment: str | None = None, email_to: str | None = None, name: str | None = None,
               progress: Progress | None = None) -> int:
        """Deposit a file (streamed from disk, never read into memory); returns the document id."""
        source = Path(path)
        name = name or source.name
        label = label or default_label()
        try:
            total = source.stat().st_size
        except OSError as exc:
            raise ParafeClientError.of(E.CLIENT_FILE_UNREADABLE, path=str(source), reason=exc.strerror or str(exc)
                                       ) from None
        data = {"label": label}
        if comment:
            data["comment"] = comment
        if email_to:
            data["emailDestinataire"] = email_to
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                # the previous answer was lost: the server may hold the document already (no duplicate)
                found = self.find(siren, circuit, label, name)
                if found is not None:
                    return found
            try:
                with open(source, "rb") as fh:
                    reader = _ProgressReader(fh, total, progress)
                    response = self._http.post(f"/documents/v2/{siren}/{circuit}/upload", data=data,
                                               files={"content": (name, reader, media)})  # type: ignore[dict-item]
                try:
                    text = self._check(response).text.strip()
                except ParafeClientError as err:
                    # a retry refused as « Doublon »: the lost attempt was still being stored when we looked
                    if attempt and err.code == E.DUPLICATE_FILE.code:
                        found = self.find(siren, circuit, label, name)
                        if found is not None:
                            return found
                    raise
                try:
                    return int(text)
                except ValueError:
                    raise ParafeClientError.of(E.CLIENT_UNEXPECTED_ANSWER, reason=f"identifiant « {text[:40]} »"
                                               ) from None
            except OSError as exc:
                if isinstance(exc, httpx.TransportError):
                    raise
                raise ParafeClientError.of(E.CLIENT_FILE_UNREADABLE, path=str(source),
                                           reason=exc.strerror or str(exc)) from None
            except httpx.TransportError as exc:
                last = exc
                self.sleep(self.backoff * 2 ** attempt)
        assert last is not None
        raise self._unreachable(last)

    # --- following a document

    def history(self, document_id: int) -> list[HistoryEntry]:
        return [HistoryEntry.from_json(e) for e in self._json(f"/documents/v2/{document_id}/history")]

    def status(self, document_id: int) -> DocumentStatus:
        history = tuple(self.history(document_id))
        current = next((e.state for e in reversed(history) if e.state), None)
        return DocumentStatus(document_id, current, history)

    def wait_until(self, document_id: int, state: str, *, timeout: float = 600.0, first_delay: float = 1.0,
                   max_delay: float = 30.0, factor: float = 1.6,
                   on_poll: Callable[[DocumentStatus, float], None] | None = None) -> DocumentStatus:
        """Wait until the document has reached ``state`` (in its history); back-off from ``first_delay`` to
        ``max_delay``. Raises ``CLIENT_DOCUMENT_ENDED`` when the circuit ends without it, ``CLIENT_WAIT_TIMEOUT``
        after ``timeout`` seconds."""
        wanted = labels_for(state)
        deadline = time.monotonic() + timeout
        delay = first_delay
        while True:
            status = self.status(document_id)
            if status.reached(wanted):
                return status
            if status.state in FINAL_LABELS:
                raise ParafeClientError.of(E.CLIENT_DOCUMENT_ENDED, document=document_id, state=state,
                                           current=status.state)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ParafeClientError.of(E.CLIENT_WAIT_TIMEOUT, document=document_id, state=state,
                                           seconds=f"{timeout:g}", current=status.state or "—")
            if on_poll is not None:
                on_poll(status, min(delay, left))
            self.sleep(min(delay, left))
            delay = min(max_delay, delay * factor)

    # --- downloads (streamed to disk)

    def _download(self, path: str, dest: str | os.PathLike[str] | None, default_name: str,
                  params: dict[str, str] | None = None) -> Path:
        for attempt in range(self.retries + 1):
            try:
                with self._http.stream("GET", path, params=params) as response:
                    self._check(response)
                    name = _disposition_name(response.headers.get("content-disposition")) or default_name
                    target = Path(dest) if dest is not None else Path(name)
                    if target.is_dir():
                        target = target / name
                    partial = target.with_name(target.name + ".part")
                    try:
                        with open(partial, "wb") as out:
                            for chunk in response.iter_bytes(1024 * 1024):
                                out.write(chunk)
                        os.replace(partial, target)
                    except OSError as exc:
                        raise ParafeClientError.of(E.CLIENT_FILE_UNREADABLE, path=str(target),
                                                   reason=exc.strerror or str(exc)) from None
                    return target
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise self._unreachable(exc) from None
                self.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def download(self, document_id: int, dest: str | os.PathLike[str] | None = None) -> Path:
        """The document (its signed version once signed) into ``dest`` (a file or a folder)."""
        return self._download(f"/documents/v2/{document_id}/download", dest, f"{document_id}.bin")

    def download_fdc(self, document_id: int, dest: str | os.PathLike[str] | None = None) -> Path:
        return self._download(f"/documents/v2/{document_id}/getFdc", dest, f"FDC_{document_id}.pdf")

    def download_ack(self, document_id: int, dest: str | os.PathLike[str] | None = None) -> Path:
        return self._download(f"/documents/v2/{document_id}/ack/download", dest, f"ACQUIT_{document_id}.xml")

    def remaining(self, siren: str, kind: str = "ack") -> list[int]:
        """Ids waiting in a remaining list: ``ack``, ``pes-retour``, ``chorus`` or ``signed``."""
        if kind not in RETURN_KINDS:
            raise ParafeClientError.of(E.CLIENT_STATE_UNKNOWN, state=kind, states=", ".join(RETURN_KINDS))
        return [int(i) for i in self._json(f"/documents/v2/{siren}/{kind}/remaining")]

    def fetch_return(self, kind: str, return_id: int, dest: str | os.PathLike[str] | None = None) -> Path:
        """Download one return of a remaining list (it then leaves the list)."""
        if kind == "signed":
            return self.download(return_id, dest)
        if kind not in RETURN_KINDS:
            raise ParafeClientError.of(E.CLIENT_STATE_UNKNOWN, state=kind, states=", ".join(RETURN_KINDS))
        return self._download(f"/documents/v2/{return_id}/{kind}/download", dest, f"{kind}_{return_id}.xml")

    def compliance(self) -> dict[str, Any]:
        """This certificate's compliance report (docs/integrators.md)."""
        return dict(self._json("/compliance"))


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)")
_FILENAME = re.compile(r'filename\s*=\s*"?([^";]+)"?')


def _disposition_name(value: str | None) -> str | None:
    if not value:
        return None
    match = _FILENAME_STAR.search(value)
    name = unquote(match.group(1)) if match else (m.group(1) if (m := _FILENAME.search(value)) else None)
    return Path(name).name if name else None
