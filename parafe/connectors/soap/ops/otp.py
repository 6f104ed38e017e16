"""OTP operations: getSmsUrl (deprecated), getMultiIdsSmsUrl, otpUpload, uploadBSMS, getSMSHistory."""

from __future__ import annotations

from typing import Any

from parafe.connectors.soap.envelope import bad_request
from parafe.connectors.soap.ops import Call, data_file_upload, operation
from parafe.domain.errors import E, ParafeError
from parafe.formats.metadata import parse_meta_data_list, render_meta_data_list
from parafe.services import circuits
from parafe.services.documents import deposit as documents
from parafe.services.otp import links as otp_links
from parafe.services.otp import sms_deliveries


def _redirect(value: str | None) -> str | None:
    """The redirect URL; an empty string means no redirection (spec §2.5.16)."""
    return value.strip() if value and value.strip() else None


@operation("getSmsUrl")
def get_sms_url(call: Call) -> dict[str, Any]:
    url = otp_links.otp_url(call.ctx, call.principal, [call.document_id("nodeRefId")], base_url=call.base_url,
                            referer=_redirect(call.text("url")))
    return {"return": url}


@operation("getMultiIdsSmsUrl")
def get_multi_ids_sms_url(call: Call) -> dict[str, Any]:
    ids = [i for i in (call.values.get("nodeRefIds") or []) if i and i.strip()]
    if not ids:
        raise ParafeError(E.DOCUMENT_NOT_FOUND, detail="nodeRefIds missing")
    url = otp_links.otp_url(call.ctx, call.principal, ids, base_url=call.base_url,
                            referer=_redirect(call.text("url")))
    return {"return": url}


def _deposit_request(call: Call, siren_param: str, document_param: str) -> documents.DepositRequest:
    vo = call.values.get(document_param)
    if vo is None:
        raise bad_request(f"le document « {document_param} » est obligatoire")
    return documents.DepositRequest(
        siren=(call.text(siren_param) or "").strip(), circuit=call.text("circuitId") or "",
        upload=data_file_upload(vo), label=call.text("label"), comment=call.text("comment"), source="ws",
        pictograms=call.small_binary("pictograms"))


@operation("otpUpload")
def otp_upload(call: Call) -> dict[str, Any]:
    request = _deposit_request(call, "siren", "document")
    otp_vo = call.values.get("otpData")
    if otp_vo is None:
        raise ParafeError(E.BSMS_METADATA_MISSING, detail="otpData missing")
    otp_file = data_file_upload(otp_vo)
    result = otp_links.otp_upload(
        call.ctx, call.principal, request, otp_file.path.read_bytes() if otp_file.size else b"",
        otp_filename=otp_file.filename if isinstance(otp_file.filename, str) and otp_file.filename else None,
        name_rule="metas", referer=_redirect(call.text("redirectionURL")), base_url=call.base_url)
    return {"return": [str(result.document_id), result.url]}


def bsms_otp_information(data: bytes) -> bytes:
    """uploadBSMS's ``metaFileVO`` as OTP information (§6.3).

    The document asks for « au minimum les 3 métadonnées au format texte suivantes, dans l'ordre : le nom +
    prénom, l'email et le numéro de téléphone » without naming them (G-08): a file with ``OTP_*_i`` names is
    taken as is; otherwise its first three values are the signer's full name, e-mail and phone number.
    """
    items = parse_meta_data_list(data)
    if any(name.startswith("OTP_") for name, _ in items):
        return data
    if len(items) < 3 or not all(value.strip() for _, value in items[:3]):
        raise ParafeError(E.BSMS_METADATA_MISSING, detail="name, e-mail and phone number are required, in order")
    (_, full_name), (_, email), (_, phone) = items[:3]
    return render_meta_data_list([("OTP_lastname_0", full_name.strip()), ("OTP_email_0", email.strip()),
                                  ("OTP_phonenumber_0", phone.strip())])


@operation("uploadBSMS")
def upload_bsms(call: Call) -> dict[str, Any]:
    request = _deposit_request(call, "subscriberId", "dataFileVO")
    meta_vo = call.values.get("metaFileVO")
    meta_file = data_file_upload(meta_vo) if meta_vo is not None else None
    if meta_file is None or meta_file.size == 0:
        raise ParafeError(E.BSMS_METADATA_MISSING, detail="metaFileVO missing or empty")
    otp_data = bsms_otp_information(meta_file.path.read_bytes())
    result = otp_links.otp_upload(call.ctx, call.principal, request, otp_data, name_rule="any",
                                  referer=_redirect(call.text("referrer")), base_url=call.base_url)
    return {"return": [str(result.document_id), result.url]}


@operation("getSMSHistory")
def get_sms_history(call: Call) -> dict[str, Any]:
    entries = circuits.sms_history(call.ctx, call.principal, (call.text("siren") or "").strip(),
                                   call.text("cinematiqueId"), call.text("date"), status=call.text("status"),
                                   limit=call.text("limit"))
    return {"return": [
        {"id": str(e.id), "tag": e.circuit, "receiver": e.receiver, "creationDatetime": e.created_at,
         "sentAt": e.sent_at, "deliveredAt": e.delivered_at, "differedDelivery": 0,
         "deliveryReceipt": sms_deliveries.receipt_code(e.delivery), "messageLength": e.message_length,
         "numberOfSms": e.segments, "credits": float(e.segments) if e.sent_at else 0.0, "pttId": 0,
         "ptt": e.status, "pttDescription": sms_deliveries.describe(e.provider, e.delivery, e.error) or e.status}
        for e in entries]}

