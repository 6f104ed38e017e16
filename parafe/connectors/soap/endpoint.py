"""The SOAP endpoint ``/parapheur-soap/soap/v1/Documents``: WSDL on GET, operations on POST (contract-first).

POST is accepted on ``…/Documents`` and on ``…/Documents?wsdl`` (Maarch), whatever the SOAPAction header
(absent as Pastell sends it, empty, quoted, or anything: dispatch is on the first child of ``Body``).

A request goes through these steps, memory bounded at each:
1. the caller's identity is checked first, for GET too (no certificate: the body is drained, a 401 fault
   answers);
2. the body is streamed to a spooled temporary file with a hard limit (the base64 size of
   ``max_upload_bytes`` plus envelope overhead; past it: ``Fichier trop volumineux.``, HTTP 413);
3. in a worker thread: MTOM parts are split to disk, the envelope is parsed in chunks with base64 content
   decoded to spools (:mod:`~parafe.connectors.soap.envelope`), validated against the WSDL's schema, decoded
   (:mod:`~parafe.connectors.soap.codec`) and handed to the operation (:mod:`~parafe.connectors.soap.ops`);
4. the response envelope is streamed, base64 content encoded chunk by chunk, with an exact Content-Length.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from parafe.connectors.compliance import note_soap_operation
from parafe.connectors.soap import codec, faults, mtom, wsdl
from parafe.connectors.soap.contract import INNER_WSDL, Operation
from parafe.connectors.soap.envelope import ParsedRequest, SoapVersionMismatch, parse_envelope
from parafe.connectors.soap.ops import Call, load_all
from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.security.identity import RequestIdentity
from parafe.services.access.auth import Principal, authenticate_async

log = logging.getLogger(__name__)

PATH = "/soap/v1/Documents"
XML_MEDIA_TYPE = "text/xml; charset=utf-8"
ENVELOPE_OVERHEAD = 1024 * 1024
MEMORY_SPOOL = 1024 * 1024  # bodies up to this size stay in memory
DRAIN_LIMIT = 1024 * 1024 * 1024  # after a refusal, read (and drop) at most this much more of the body


def body_limit(max_upload_bytes: int) -> int:
    """Largest accepted request body: base64 of the deposit limit, with CRLF every 76 characters, plus 1 MiB."""
    encoded = 4 * ((max_upload_bytes + 2) // 3)
    return encoded + 2 * (encoded // 76) + ENVELOPE_OVERHEAD


class _TooLarge(Exception):
    pass


@dataclass
class _Outcome:
    status: int
    parts: list[codec.Part]
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    operation: str | None = None  # the operation asked, once known (compliance report, issue 21)

    def run_cleanup(self) -> None:
        for action in reversed(self.cleanup):
            try:
                action()
            except Exception:  # cleanup must not hide the answer
                log.exception("SOAP cleanup failed")


def _fault(error: ParafeError, faultcode: str, status: int, operation: Operation | None = None) -> _Outcome:
    return _Outcome(status, [faults.fault_body(error, faultcode, operation)],
                    operation=operation.name if operation is not None else None)


def _client_status(error: ParafeError) -> int:
    return 413 if error.error is E.FILE_TOO_LARGE else 400


def _base_url(request: Request) -> str:
    server = request.scope.get("server") or ("127.0.0.1", 8443)
    fallback = f"{server[0]}:{server[1]}"
    host = wsdl.safe_host(request.headers.get("host"), fallback)
    return f"{request.url.scheme}://{host}"


def _endpoint_url(request: Request) -> str:
    path = request.url.path.rstrip("/")
    return f"{_base_url(request)}{path}"


def _wsdl_query(request: Request) -> tuple[bool, str]:
    for key, value in parse_qsl(request.url.query, keep_blank_values=True):
        if key.lower() == "wsdl":
            return True, value
    return False, ""


def _response(outcome: _Outcome) -> Response:
    length = codec.parts_length(outcome.parts)
    headers = {"Content-Length": str(length)}
    if all(isinstance(p, bytes) for p in outcome.parts):
        body = b"".join(p for p in outcome.parts if isinstance(p, bytes))
        outcome.run_cleanup()
        return Response(body, status_code=outcome.status, media_type=XML_MEDIA_TYPE, headers=headers)
    iterator: Iterator[bytes] = codec.iter_parts(outcome.parts)
    return StreamingResponse(iterator, status_code=outcome.status, media_type=XML_MEDIA_TYPE, headers=headers,
                             background=BackgroundTask(outcome.run_cleanup))


class SoapEndpoint:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.handlers = load_all()
        self.limit = body_limit(ctx.settings.max_upload_bytes)

    async def __call__(self, request: Request) -> Response:
        # Every route of a connector needs a verified identity (operator contract), the WSDL included.
        identity: RequestIdentity = request.scope.get("state", {}).get("identity") or RequestIdentity()
        try:
            principal = await authenticate_async(self.ctx, identity)
        except ParafeError as error:
            if request.method == "POST":
                await self._drain(request)
            return _response(_fault(error, faults.SERVER, 401))
        if request.method in ("GET", "HEAD"):
            return self._get(request)
        return await self._post(request, principal)

    # GET: the WSDL

    def _get(self, request: Request) -> Response:
        asked, value = _wsdl_query(request)
        if not asked:
            return PlainTextResponse(
                "Parafe — service SOAP compatible FAST-Parapheur.\n"
                f"WSDL : {_endpoint_url(request)}?wsdl\n")
        if value == "":
            data = wsdl.outer_wsdl(_endpoint_url(request))
        elif value == INNER_WSDL:
            data = wsdl.inner_wsdl()
        else:
            return PlainTextResponse("WSDL inconnu\n", status_code=404)
        return Response(data, media_type=XML_MEDIA_TYPE)

    # POST: an operation

    async def _post(self, request: Request, principal: Principal) -> Response:
        try:
            body = await self._spool(request)
        except _TooLarge:
            return _response(_fault(ParafeError(E.FILE_TOO_LARGE, detail="request body too large"),
                                    faults.CLIENT, 413))
        content_type = request.headers.get("content-type")
        base_url = _base_url(request)
        try:
            outcome = await run_in_threadpool(self._process, principal, body, content_type, base_url)
        finally:
            body.close()
        note_soap_operation(request.scope, outcome.operation)
        return _response(outcome)

    async def _spool(self, request: Request) -> Any:
        """The body in a spooled temporary file; past the limit the rest is drained (bounded) and dropped."""
        spool = tempfile.SpooledTemporaryFile(max_size=MEMORY_SPOOL, dir=str(self.ctx.tmp_dir),  # noqa: SIM115
                                                prefix="soap-body-")  # handed to the caller, which closes it
        total = 0
        too_large = False
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if too_large:
                    if total > self.limit + DRAIN_LIMIT:
                        break
                    continue
                if total > self.limit:
                    too_large = True
                    spool.close()
                    continue
                spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        if too_large:
            raise _TooLarge
        spool.seek(0)
        return spool

    async def _drain(self, request: Request) -> None:
        """Read and drop the body of a refused caller, so that the client reads our fault (bounded)."""
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > self.limit:
                    return
        except Exception:  # the client went away, or the stream was already consumed
            return

    def _process(self, principal: Principal, body: Any, content_type: str | None, base_url: str) -> _Outcome:
        ctx = self.ctx
        cleanup: list[Callable[[], None]] = []
        parsed: ParsedRequest | None = None
        try:
            attachments = None
            source = body
            if mtom.is_multipart(content_type):
                assert content_type is not None
                mime = mtom.split_related(body, content_type, ctx.tmp_dir, self.limit)
                cleanup.append(mime.discard)
                attachments = mime.attachments
                source = open(mime.root.path, "rb")  # noqa: SIM115 - closed just below
                cleanup.append(source.close)
            parsed = parse_envelope(source, tmp_dir=ctx.tmp_dir, limit=ctx.settings.max_upload_bytes,
                                    attachments=attachments)
            cleanup.append(parsed.discard)
        except SoapVersionMismatch as exc:
            _run(cleanup)
            return _fault(ParafeError(E.BAD_REQUEST, reason="enveloppe SOAP 1.1 attendue", detail=str(exc)),
                          faults.VERSION_MISMATCH, 400)
        except ParafeError as error:
            _run(cleanup)
            return _fault(error, faults.CLIENT, _client_status(error))
        except Exception:
            _run(cleanup)
            log.exception("unexpected error while reading a SOAP request")
            return _fault(ParafeError(E.INTERNAL), faults.SERVER, 500)
        operation = parsed.operation
        try:
            values = codec.decode_request(operation, parsed.element, parsed.binaries)
            values.update(parsed.extras)
            call = Call(ctx=ctx, principal=principal, operation=operation.name, values=values, base_url=base_url,
                        cleanup=cleanup)
            result = self.handlers[operation.name](call)
            parts = codec.response_parts(operation, result)
        except ParafeError as error:
            _run(cleanup)
            return _fault(error, faults.SERVER, error_status(error), operation)
        except Exception:
            _run(cleanup)
            log.exception("unexpected error in SOAP operation %s", operation.name)
            return _fault(ParafeError(E.INTERNAL), faults.SERVER, 500, operation)
        return _Outcome(200, parts, cleanup, operation=operation.name)


def error_status(error: ParafeError) -> int:
    """HTTP status of a business fault: 401 for authentication errors, 500 otherwise (SOAP 1.1 / CXF)."""
    return 401 if error.http_status == 401 else 500


def _run(actions: list[Callable[[], None]]) -> None:
    for action in reversed(actions):
        try:
            action()
        except Exception:
            log.exception("SOAP cleanup failed")
    actions.clear()


def create_soap_app(ctx: AppContext) -> Starlette:
    """The SOAP connector, to mount under ``/parapheur-soap``."""
    endpoint = SoapEndpoint(ctx)

    async def documents(request: Request) -> Response:
        return await endpoint(request)

    routes = [Route(PATH, documents, methods=["GET", "POST"]), Route(PATH + "/", documents, methods=["GET", "POST"])]
    app = Starlette(routes=routes)
    app.state.ctx = ctx
    return app
