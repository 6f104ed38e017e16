"""PAdES signatures of PDF documents with pyHanko: baseline B-B, B-T, B-LT (and B-LTA).

Public API
----------
``sign_pdf(data_or_path, signer, *, level="B-B", stamp=None, reason=None, location=None, tsa_url=None,
timestamper=None, validation_context=None, field_name=None, contact_info=None) -> bytes``

- ``signer``: a :class:`~parafe.signing.keys.ServerSigner` (key parsed once, see :mod:`parafe.signing.keys`).
- ``level``: ``"B-B"`` | ``"B-T"`` (RFC 3161 token from ``tsa_url`` or ``timestamper``; a failure raises
  :class:`~parafe.signing.errors.TimestampError`) | ``"B-LT"`` (B-T + a DSS holding the certificates and the
  CRL/OCSP responses found through ``validation_context``; error if no revocation data can be embedded) |
  ``"B-LTA"`` (B-LT + a document time-stamp).
- ``stamp``: a :class:`~parafe.signing.stamp.StampSpec` for a visible pictogram, else an invisible signature.
- Every signature is an incremental update: earlier signatures stay valid.
- Protected PDFs (password, no right to annotate or fill forms, certification signature P=1) raise
  :class:`~parafe.signing.errors.PdfProtectedError`.

Call from worker threads; the function is synchronous (it runs pyHanko's coroutines itself).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps import TimestampRequestError as PyHankoTimestampError
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.stamp import NoOpStampStyle
from pyhanko_certvalidator import ValidationContext

from parafe.signing._aio import run_sync
from parafe.signing.errors import PdfProtectedError, PdfSigningError, TimestampError
from parafe.signing.keys import ServerSigner
from parafe.signing.stamp import (
    Appearance,
    StampSpec,
    place_stamp,
    render_appearance,
    resolve_page_index,
    stamp_lines,
)
from parafe.signing.tsa import normalize_level, resolve_timestamper

__all__ = ["read_input", "sign_pdf"]


def read_input(data_or_path: bytes | bytearray | memoryview | str | Path) -> bytes:
    """The document bytes, from bytes or a path."""
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        return bytes(data_or_path)
    return Path(data_or_path).read_bytes()


def sign_pdf(
    data_or_path: bytes | str | Path,
    signer: ServerSigner,
    *,
    level: str = "B-B",
    stamp: StampSpec | None = None,
    reason: str | None = None,
    location: str | None = None,
    tsa_url: str | None = None,
    timestamper: TimeStamper | None = None,
    validation_context: ValidationContext | None = None,
    field_name: str | None = None,
    contact_info: str | None = None,
) -> bytes:
    """Sign a PDF (PAdES baseline) and return the signed bytes. See the module docstring."""
    data = read_input(data_or_path)
    level = normalize_level(level)
    ts = resolve_timestamper(level, tsa_url, timestamper)
    if level in ("B-LT", "B-LTA") and validation_context is None:
        raise PdfSigningError(f"Le niveau {level} exige un contexte de validation (racines, CRL/OCSP).")
    writer = open_for_signing(data)
    name = field_name or next_field_name(writer)
    when = datetime.now(UTC)
    if stamp is not None:
        add_visible_field(writer, name, stamp, signer.common_name, when)
    meta = signers.PdfSignatureMetadata(
        field_name=name,
        md_algorithm="sha256",
        reason=reason,
        location=location,
        contact_info=contact_info,
        subfilter=fields.SigSeedSubFilter.PADES,
        embed_validation_info=level in ("B-LT", "B-LTA"),
        use_pades_lta=level == "B-LTA",
        validation_context=validation_context,
    )
    pdf_signer = signers.PdfSigner(meta, signer=signer.pyhanko_signer(), timestamper=ts,
                                   stamp_style=NoOpStampStyle())
    try:
        out = run_sync(pdf_signer.async_sign_pdf(writer))
    except PyHankoTimestampError as exc:
        raise TimestampError(f"Horodatage impossible : {exc}") from exc
    except PyHankoSigningError as exc:
        _raise_signing_error(exc)
    except PdfError as exc:
        raise PdfSigningError(f"PDF illisible ou non signable : {exc}") from exc
    except OSError as exc:
        # Time-stamp transport failures surface as OSError subclasses.
        raise TimestampError(f"Horodatage impossible : {exc}") from exc
    result: bytes = out.getvalue()
    if level in ("B-LT", "B-LTA"):
        require_revocation_info(result)
    return result


def _raise_signing_error(exc: Exception) -> Any:
    text = str(exc)
    if "forbids all changes" in text or "DocMDP" in text or "Author signature" in text:
        raise PdfProtectedError("Le PDF est certifié et interdit toute modification.") from exc
    if "timestamp" in text.lower() or "time stamp" in text.lower():
        raise TimestampError(f"Horodatage impossible : {exc}") from exc
    raise PdfSigningError(f"Signature PDF impossible : {exc}") from exc


def open_for_signing(data: bytes) -> IncrementalPdfFileWriter:
    """An incremental writer over ``data``; refuses PDFs whose protection forbids signing."""
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
    except (PdfError, ValueError, KeyError, IndexError) as exc:
        raise PdfSigningError(f"PDF illisible : {exc}") from exc
    reader = writer.prev
    if reader.encrypted:
        try:
            writer.encrypt("")
        except Exception as exc:  # wrong password is reported by several classes
            raise PdfProtectedError("Le PDF est protégé par un mot de passe.") from exc
        try:
            perms = int(reader.trailer["/Encrypt"].get("/P", -1))
        except (KeyError, TypeError, ValueError):
            perms = -1
        if not perms & (32 | 256):  # neither "modify annotations" nor "fill in forms"
            raise PdfProtectedError("Les droits du PDF interdisent d'y ajouter une signature.")
    return writer


def next_field_name(writer: IncrementalPdfFileWriter | PdfFileReader) -> str:
    """``SignatureN`` not yet used in the document."""
    existing = {name for name, _, _ in fields.enumerate_sig_fields(writer)}
    n = len(existing) + 1
    while f"Signature{n}" in existing:
        n += 1
    return f"Signature{n}"


def _inherited(page: generic.DictionaryObject, key: str) -> Any:
    node: Any = page
    while node is not None:
        if key in node:
            return node[key]
        node = node.get("/Parent")
        node = node.get_object() if node is not None else None
    return None


def add_visible_field(
    writer: IncrementalPdfFileWriter, name: str, spec: StampSpec, signer_name: str, when: datetime
) -> None:
    """Create the signature field and widget with our pictogram as its normal appearance."""
    n_pages = int(writer.root["/Pages"]["/Count"])
    page_idx = resolve_page_index(spec.page, n_pages)
    page_ref = writer.find_page_for_modification(page_idx)[0]
    page = page_ref.get_object()
    box = _inherited(page, "/CropBox") or _inherited(page, "/MediaBox")
    rotate = int(_inherited(page, "/Rotate") or 0)
    placement = place_stamp(spec, [float(v) for v in box], rotate)
    appearance = render_appearance(spec, stamp_lines(spec, signer_name, when))
    fields.append_signature_field(
        writer, fields.SigFieldSpec(sig_field_name=name, on_page=page_idx, box=placement.rect)  # type: ignore[arg-type]
    )
    for fname, _, field_ref in fields.enumerate_sig_fields(writer):
        if fname == name:
            annot = field_ref.get_object()
            annot[pdf_name("/AP")] = generic.DictionaryObject(
                {pdf_name("/N"): _appearance_xobject(writer, appearance, placement.matrix)}
            )
            annot[pdf_name("/F")] = generic.NumberObject(4 | 128)  # Print, Locked
            writer.update_container(annot)
            return
    raise PdfSigningError("Champ de signature introuvable après sa création.")  # pragma: no cover


def _appearance_xobject(
    writer: IncrementalPdfFileWriter, appearance: Appearance, matrix: tuple[float, ...]
) -> generic.IndirectObject:
    font_refs = {
        "/F1": writer.add_object(_font_dict("/Helvetica")),
        "/F2": writer.add_object(_font_dict("/Helvetica-Bold")),
    }
    resources = generic.DictionaryObject(
        {pdf_name("/Font"): generic.DictionaryObject({pdf_name(k): v for k, v in font_refs.items()})}
    )
    img = appearance.image
    if img is not None:
        img_dict = generic.DictionaryObject({
            pdf_name("/Type"): pdf_name("/XObject"),
            pdf_name("/Subtype"): pdf_name("/Image"),
            pdf_name("/Width"): generic.NumberObject(img.width),
            pdf_name("/Height"): generic.NumberObject(img.height),
            pdf_name("/ColorSpace"): pdf_name(img.colorspace),
            pdf_name("/BitsPerComponent"): generic.NumberObject(8),
            pdf_name("/Filter"): pdf_name(img.filter),
        })
        if img.smask is not None:
            smask = generic.StreamObject(generic.DictionaryObject({
                pdf_name("/Type"): pdf_name("/XObject"),
                pdf_name("/Subtype"): pdf_name("/Image"),
                pdf_name("/Width"): generic.NumberObject(img.width),
                pdf_name("/Height"): generic.NumberObject(img.height),
                pdf_name("/ColorSpace"): pdf_name("/DeviceGray"),
                pdf_name("/BitsPerComponent"): generic.NumberObject(8),
                pdf_name("/Filter"): pdf_name("/FlateDecode"),
            }), encoded_data=img.smask)
            img_dict[pdf_name("/SMask")] = writer.add_object(smask)
        img_ref = writer.add_object(generic.StreamObject(img_dict, encoded_data=img.data))
        resources[pdf_name("/XObject")] = generic.DictionaryObject({pdf_name("/Im1"): img_ref})
    xobj = generic.StreamObject(
        generic.DictionaryObject({
            pdf_name("/Type"): pdf_name("/XObject"),
            pdf_name("/Subtype"): pdf_name("/Form"),
            pdf_name("/BBox"): generic.ArrayObject(
                [generic.FloatObject(0), generic.FloatObject(0),
                 generic.FloatObject(appearance.width), generic.FloatObject(appearance.height)]),
            pdf_name("/Matrix"): generic.ArrayObject([generic.FloatObject(m) for m in matrix]),
            pdf_name("/Resources"): resources,
        }),
        stream_data=appearance.content,
    )
    xobj.compress()
    return writer.add_object(xobj)


def _font_dict(base: str) -> generic.DictionaryObject:
    return generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"),
        pdf_name("/Subtype"): pdf_name("/Type1"),
        pdf_name("/BaseFont"): pdf_name(base),
        pdf_name("/Encoding"): pdf_name("/WinAnsiEncoding"),
    })


def require_revocation_info(pdf: bytes) -> None:
    """B-LT and above: the DSS must hold CRLs or OCSP responses, else the level is not reached."""
    try:
        dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(pdf), strict=False))
    except (PdfError, KeyError, ValueError, TypeError) as exc:
        raise PdfSigningError("Niveau B-LT non atteint : pas de DSS dans le document signé.") from exc
    if not dss.crls and not dss.ocsps:
        raise PdfSigningError(
            "Niveau B-LT non atteint : aucune information de révocation (CRL/OCSP) n'a pu être intégrée."
        )

