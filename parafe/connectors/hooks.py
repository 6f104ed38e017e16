"""Provider callbacks: ``POST /hooks/sms/{provider}`` receives SMS delivery receipts (issue 16).

Thin: the body and its signature header go to :func:`parafe.services.otp.sms_deliveries.apply_receipt`, which checks
the HMAC-SHA256 of the raw body with ``PARAFE_SMS_HOOK_SECRET`` before reading anything. No client certificate:
the gateway is not a Parafe client. Answers JSON with a French message.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parafe.config import sms_settings
from parafe.context import AppContext
from parafe.services.otp.sms_deliveries import ReceiptRejected, apply_receipt

MAX_RECEIPT_BYTES = 64 * 1024


async def sms_receipt(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    body = await request.body()
    if len(body) > MAX_RECEIPT_BYTES:
        return JSONResponse({"message": "accusé de réception trop volumineux"}, status_code=413)
    header = sms_settings().hook_signature_header
    try:
        result = await run_in_threadpool(apply_receipt, ctx, request.path_params["provider"], body,
                                         request.headers.get(header), request.headers.get("content-type", ""))
    except ReceiptRejected as exc:
        return JSONResponse({"message": exc.message}, status_code=exc.http_status)
    return JSONResponse({"message": "accusé de réception enregistré", **result})
