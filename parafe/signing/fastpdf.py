"""Fast PAdES writer: one incremental update per document, CMS assembled from precomputed parts.

This is the engine of the bulk path (:mod:`parafe.signing.bulk`) and of remote PDF signing
(:mod:`parafe.signing.remote`). It produces the same PAdES baseline signature as pyHanko (``ETSI.CAdES.detached``,
signed attributes content-type / message-digest / signing-certificate-v2, no signing-time; ``/M`` in the
signature dictionary) but, instead of parsing and re-writing the document with pyHanko's pure-Python PDF
layer, it:

- reads only the few objects it changes (catalog or AcroForm, the page or its ``/Annots``) with pikepdf (qpdf);
- appends one incremental update (new field/widget, signature dictionary, pictogram objects, rewritten
  objects, an xref section of the same kind as the previous one, trailer with ``/Prev``);
- computes the ByteRange digest with hashlib over two memoryviews;
- builds the CMS ``SignedData`` by concatenating DER parts computed once per signer (certificate set,
  signer identifier, algorithm identifiers, signed-attribute template with a slot for the digest), so per
  document only the digest, the RSA signature and (B-T) the time-stamp token change;
- reuses the pictogram appearance (content stream compressed once per distinct text, image data once).

It handles B-B and B-T, RSA and EC keys. Anything unusual (encrypted files, hybrid-reference files, a
certification signature, qpdf repair warnings) raises :class:`FastPathUnsupported`; callers then use
:func:`pades.sign_pdf`, which either signs the document with pyHanko or reports why it cannot be signed.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pikepdf
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.signers.pdf_cms import ExternalSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from parafe.signing._aio import run_sync
from parafe.signing.errors import PdfSigningError
from parafe.signing.keys import ServerSigner
from parafe.signing.stamp import (
    Appearance,
    StampSpec,
    place_stamp,
    render_appearance,
    resolve_page_index,
    stamp_lines,
)
from parafe.signing.tsa import dummy_token_size, timestamp_token

__all__ = ["CmsTemplate", "FastPathUnsupported", "FastPdfSigner", "PreparedPdf", "der_tlv", "pdf_text"]


class FastPathUnsupported(Exception):
    """The fast writer does not handle this document; use the pyHanko path (which may refuse it)."""


# --- DER helpers ---------------------------------------------------------------------------------------------
def der_tlv(tag: int, content: bytes) -> bytes:
    """One DER tag-length-value with a single-byte tag."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


_OID_SIGNED_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
_OID_TST_ATTR = core.ObjectIdentifier("1.2.840.113549.1.9.16.2.14").dump()
_MARKER = bytes(range(0xA0, 0xC0))  # 32 bytes that cannot collide with the rest of the DER template


class CmsTemplate:
    """Everything of a PAdES CMS that does not change between documents for one signing certificate.

    Built from the certificate and chain only (no key), so it serves server keys and remote signers alike.
    """

    def __init__(self, certificate: x509.Certificate, chain: Sequence[x509.Certificate], signature_size: int) -> None:
        self.signature_size = signature_size
        asn1_cert = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
        asn1_chain = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain]
        registry = SimpleCertificateStore.from_certs([asn1_cert, *asn1_chain])
        placeholder = bytes([0x5A]) * signature_size
        py_signer = ExternalSigner(asn1_cert, registry, signature_value=placeholder)
        attrs = run_sync(py_signer.signed_attrs(_MARKER, "sha256", use_pades=True))
        sa = attrs.dump()
        if sa.count(_MARKER) != 1:  # pragma: no cover - structural guard
            raise FastPathUnsupported("signed attribute template is ambiguous")
        self._sa_prefix, self._sa_suffix = sa.split(_MARKER)
        ci = run_sync(py_signer.async_sign_prescribed_attributes("sha256", attrs))
        sd = ci["content"]
        si = sd["signer_infos"][0]
        self._sd_head = b"".join(sd[k].dump() for k in ("version", "digest_algorithms", "encap_content_info"))
        self._sd_head += sd["certificates"].dump()
        self._si_head = b"".join(si[k].dump() for k in ("version", "sid", "digest_algorithm"))
        self._sig_alg = si["signature_algorithm"].dump()
        # Self-check: our assembly must reproduce pyHanko's own encoding byte for byte.
        if self.assemble(sa, placeholder, None) != ci.dump():  # pragma: no cover - structural guard
            raise FastPathUnsupported("CMS assembly does not match pyHanko's encoding")
        self.base_size = len(ci.dump())  # with the largest signature value of this key

    @classmethod
    def for_signer(cls, signer: ServerSigner) -> CmsTemplate:
        return cls(signer.certificate, signer.chain, signer.signature_size)

    def signed_attrs(self, digest: bytes) -> bytes:
        """DER of the signed attributes (SET OF, as signed) for a SHA-256 document digest."""
        return self._sa_prefix + digest + self._sa_suffix

    def assemble(self, signed_attrs: bytes, signature: bytes, tst: bytes | None) -> bytes:
        """The ContentInfo DER for these signed attributes, signature value and optional time-stamp token."""
        si = self._si_head + b"\xa0" + signed_attrs[1:] + self._sig_alg + der_tlv(0x04, signature)
        if tst is not None:
            attr = der_tlv(0x30, _OID_TST_ATTR + der_tlv(0x31, tst))
            si += der_tlv(0xA1, attr)
        sd = der_tlv(0x30, self._sd_head + der_tlv(0x31, der_tlv(0x30, si)))
        return der_tlv(0x30, _OID_SIGNED_DATA + der_tlv(0xA0, sd))


# --- PDF helpers -------------------------------------------------------------------------------------------
def pdf_text(text: str) -> bytes:
    """A PDF text string: literal when printable ASCII, else UTF-16BE with BOM in hex."""
    if all(32 <= ord(c) < 127 for c in text):
        return b"(" + text.encode("ascii").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(
            b")", b"\\)") + b")"
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def _num(v: float) -> bytes:
    s = f"{v:.4f}".rstrip("0").rstrip(".")
    return (s if s not in ("", "-0") else "0").encode("ascii")


def _ref(num: int, gen: int = 0) -> bytes:
    return b"%d %d R" % (num, gen)


def _pdf_date(when: datetime) -> bytes:
    return when.astimezone(UTC).strftime("(D:%Y%m%d%H%M%S+00'00')").encode("ascii")


_STARTXREF = re.compile(rb"startxref\s+(\d+)\s*(?:%%EOF)?")
_OBJ_HEADER = re.compile(rb"\s*\d+\s+\d+\s+obj\b")
_BR_PLACEHOLDER = b"/ByteRange [0 0000000000 0000000000 0000000000]"


def _unparse_without(obj: pikepdf.Dictionary, skip: Iterable[str]) -> bytes:
    """``obj``'s dictionary body without the closing ``>>``, minus the ``skip`` keys."""
    skip_set = set(skip)
    d = pikepdf.Dictionary({k: v for k, v in obj.items() if k not in skip_set})
    body = bytes(d.unparse(resolved=True)).rstrip()
    assert body.endswith(b">>")
    return body[:-2]


def _array_items(arr: Any) -> bytes:
    body = bytes(pikepdf.Array(list(arr)).unparse(resolved=True)).strip()
    return body[1:-1].strip()


@dataclass
class PreparedPdf:
    """A document with a signature dictionary whose ``/Contents`` is still empty.

    ``digest`` is the SHA-256 of the ByteRange; ``contents_start``/``contents_end`` delimit ``<...>``.
    """

    data: bytearray
    contents_start: int
    contents_end: int
    digest: bytes
    field_name: str
    signing_time: datetime

    def embed(self, cms_der: bytes) -> bytes:
        """Write the CMS into the reserved ``/Contents`` and return the final bytes."""
        hex_cms = cms_der.hex().encode("ascii")
        room = self.contents_end - self.contents_start - 2
        if len(hex_cms) > room:
            raise PdfSigningError("Espace réservé insuffisant pour la signature.")
        out = self.data
        out[self.contents_start + 1: self.contents_start + 1 + len(hex_cms)] = hex_cms
        return bytes(out)


class FastPdfSigner:
    """Prepare-and-sign PDFs with one signer and one set of options, reusing everything reusable.

    ``sign(pdf_bytes)`` returns the signed document (B-B, or B-T when ``timestamper`` is given).
    ``prepare(pdf_bytes, reserve)`` stops before the signature value (remote signing).
    """

    def __init__(
        self,
        signer: ServerSigner | None,
        *,
        stamp: StampSpec | None = None,
        signer_name: str | None = None,
        reason: str | None = None,
        location: str | None = None,
        timestamper: Any = None,
    ) -> None:
        self.signer = signer
        self.stamp = stamp
        self.signer_name = signer_name or (signer.common_name if signer else "")
        self.reason = reason
        self.location = location
        self.timestamper = timestamper
        self.cms = CmsTemplate.for_signer(signer) if signer is not None else None
        self._appearance_cache: dict[tuple[tuple[str, bool], ...], tuple[bytes, Appearance]] = {}
        self._tst_reserve: int | None = None

    # -- public -----------------------------------------------------------------------------------------------
    def contents_reserve(self) -> int:
        """Bytes reserved for the CMS: exact for B-B, plus the size of a sample token (and margin) for B-T."""
        assert self.cms is not None
        size = self.cms.base_size
        if self.timestamper is not None:
            if self._tst_reserve is None:
                self._tst_reserve = dummy_token_size(self.timestamper) + 64 + 2048
            size += self._tst_reserve
        return size

    def sign(self, data: bytes, *, when: datetime | None = None, field_name: str | None = None) -> bytes:
        """Sign one PDF; raises :class:`FastPathUnsupported` for documents the fast writer leaves to pyHanko."""
        assert self.cms is not None
        assert self.signer is not None
        prepared = self.prepare(data, self.contents_reserve(), when=when, field_name=field_name)
        signed_attrs = self.cms.signed_attrs(prepared.digest)
        signature = self.signer.sign_raw(signed_attrs, "sha256")
        tst = None
        if self.timestamper is not None:
            tst = timestamp_token(self.timestamper, hashlib.sha256(signature).digest()).dump()
        return prepared.embed(self.cms.assemble(signed_attrs, signature, tst))

    def prepare(
        self, data: bytes, reserve: int, *, when: datetime | None = None, field_name: str | None = None
    ) -> PreparedPdf:
        """Append the incremental update with an empty ``/Contents`` of ``reserve`` bytes."""
        when = when or datetime.now(UTC)
        try:
            pdf = pikepdf.open(io.BytesIO(data))
        except pikepdf.PdfError as exc:
            raise FastPathUnsupported(f"pikepdf cannot open the file: {exc}") from exc
        try:
            return self._prepare(pdf, data, reserve, when, field_name)
        finally:
            pdf.close()

    # -- internals ------------------------------------------------------------------------------------------
    def _appearance(self, lines: list[tuple[str, bool]]) -> tuple[bytes, Appearance]:
        key = tuple(lines)
        hit = self._appearance_cache.get(key)
        if hit is None:
            assert self.stamp is not None
            app = render_appearance(self.stamp, lines)
            hit = (zlib.compress(app.content, 6), app)
            if len(self._appearance_cache) > 64:
                self._appearance_cache.clear()
            self._appearance_cache[key] = hit
        return hit

    def _prepare(
        self, pdf: pikepdf.Pdf, data: bytes, reserve: int, when: datetime, field_name: str | None
    ) -> PreparedPdf:
        if pdf.is_encrypted:
            raise FastPathUnsupported("encrypted")
        trailer = pdf.trailer
        if "/XRefStm" in trailer:
            raise FastPathUnsupported("hybrid-reference file")
        root = pdf.Root
        if "/Perms" in root and "/DocMDP" in root.Perms:
            raise FastPathUnsupported("certified document (DocMDP)")
        matches = list(_STARTXREF.finditer(data, max(0, len(data) - 4096)))
        m = matches[-1] if matches else None
        if m is None:
            raise FastPathUnsupported("no startxref")
        prev = int(m.group(1))
        if data.startswith(b"xref", prev):
            xref_stream = False
        elif _OBJ_HEADER.match(data, prev):
            xref_stream = True
        else:
            raise FastPathUnsupported("startxref does not point at a cross-reference section")
        n_pages = len(pdf.pages)
        if n_pages == 0:
            raise FastPathUnsupported("no page")
        page_idx = resolve_page_index(self.stamp.page, n_pages) if self.stamp is not None else 0
        page = pdf.pages[page_idx].obj
        if pdf.get_warnings():
            raise FastPathUnsupported("qpdf had to repair the file")
        root_num, root_gen = root.objgen
        page_num, page_gen = page.objgen
        if root_num == 0 or page_num == 0:
            raise FastPathUnsupported("direct catalog or page")
        size = int(trailer.Size)

        # --- field name ---
        acroform = cast(pikepdf.Dictionary | None, root.get("/AcroForm"))
        existing_fields = list(acroform.get("/Fields", [])) if acroform is not None else []
        names = {str(f.get("/T")) for f in existing_fields if isinstance(f, pikepdf.Dictionary) and "/T" in f}
        if field_name is None:
            n = sum(1 for f in existing_fields if isinstance(f, pikepdf.Dictionary) and f.get("/FT") == "/Sig") + 1
            while f"Signature{n}" in names:
                n += 1
            field_name = f"Signature{n}"
        elif field_name in names:
            raise PdfSigningError(f"Le champ de signature « {field_name} » existe déjà.")

        objects: list[tuple[int, int, bytes]] = []  # (num, gen, body)
        next_num = size

        def alloc() -> int:
            nonlocal next_num
            next_num += 1
            return next_num - 1

        sig_num = alloc()
        widget_num = alloc()

        # --- signature dictionary ---
        sig = [b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached ", _BR_PLACEHOLDER,
               b" /Contents <", b"0" * (2 * reserve), b"> /M ", _pdf_date(when)]
        if self.reason:
            sig += [b" /Reason ", pdf_text(self.reason)]
        if self.location:
            sig += [b" /Location ", pdf_text(self.location)]
        sig.append(b" /Prop_Build << /App << /Name /Parafe >> >> >>")
        objects.append((sig_num, 0, b"".join(sig)))

        # --- widget (merged with the field) and appearance ---
        widget = [b"<< /Type /Annot /Subtype /Widget /FT /Sig /T ", pdf_text(field_name),
                  b" /V ", _ref(sig_num), b" /F 132 /P ", _ref(page_num, page_gen)]
        if self.stamp is not None:
            box = _inherited(page, "/CropBox") or _inherited(page, "/MediaBox")
            rotate = int(_inherited(page, "/Rotate") or 0)
            placement = place_stamp(self.stamp, [float(v) for v in box], rotate)
            compressed, app = self._appearance(stamp_lines(self.stamp, self.signer_name, when))
            f1, f2, ap_num = alloc(), alloc(), alloc()
            objects.append((f1, 0, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                                   b"/Encoding /WinAnsiEncoding >>"))
            objects.append((f2, 0, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold "
                                   b"/Encoding /WinAnsiEncoding >>"))
            xobjects = b""
            if app.image is not None:
                img = app.image
                smask_ref = b""
                if img.smask is not None:
                    sm_num = alloc()
                    objects.append((sm_num, 0, _stream(
                        b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                        b"/BitsPerComponent 8 /Filter /FlateDecode" % (img.width, img.height), img.smask)))
                    smask_ref = b" /SMask " + _ref(sm_num)
                im_num = alloc()
                objects.append((im_num, 0, _stream(
                    b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s /BitsPerComponent 8 "
                    b"/Filter %s%s" % (img.width, img.height, img.colorspace.encode(), img.filter.encode(),
                                       smask_ref), img.data)))
                xobjects = b" /XObject << /Im1 " + _ref(im_num) + b" >>"
            matrix = b" ".join(_num(v) for v in placement.matrix)
            objects.append((ap_num, 0, _stream(
                b"/Type /XObject /Subtype /Form /BBox [0 0 " + _num(app.width) + b" " + _num(app.height)
                + b"] /Matrix [" + matrix + b"] /Resources << /Font << /F1 " + _ref(f1) + b" /F2 " + _ref(f2)
                + b" >>" + xobjects + b" >> /Filter /FlateDecode", compressed)))
            rect = b" ".join(_num(v) for v in placement.rect)
            widget += [b" /Rect [", rect, b"] /AP << /N ", _ref(ap_num), b" >>"]
        else:
            widget.append(b" /Rect [0 0 0 0]")
        widget.append(b" >>")
        objects.append((widget_num, 0, b"".join(widget)))
        widget_ref = _ref(widget_num)

        # --- page /Annots ---
        annots = page.get("/Annots")
        if annots is not None and annots.is_indirect:
            a_num, a_gen = annots.objgen
            objects.append((a_num, a_gen, b"[" + _array_items(annots) + b" " + widget_ref + b"]"))
        else:
            items = _array_items(annots) + b" " if annots is not None else b""
            objects.append((page_num, page_gen, _unparse_without(page, ["/Annots"])
                            + b" /Annots [" + items + widget_ref + b"] >>"))

        # --- AcroForm ---
        def acroform_body(form: Any) -> bytes:
            sigflags = 3
            fields_items = b""
            if form is not None:
                sigflags |= int(form.get("/SigFlags", 0))
                fields = form.get("/Fields")
                if fields is not None and fields.is_indirect:
                    f_num, f_gen = fields.objgen
                    objects.append((f_num, f_gen, b"[" + _array_items(fields) + b" " + widget_ref + b"]"))
                    return _unparse_without(form, ["/SigFlags"]) + b" /SigFlags %d >>" % sigflags
                if fields is not None:
                    fields_items = _array_items(fields) + b" "
                base = _unparse_without(form, ["/SigFlags", "/Fields"])
            else:
                base = b"<<"
            return base + b" /Fields [" + fields_items + widget_ref + b"] /SigFlags %d >>" % sigflags

        if acroform is not None and acroform.is_indirect:
            af_num, af_gen = acroform.objgen
            objects.append((af_num, af_gen, acroform_body(acroform)))
        else:
            if acroform is not None:
                af_body = acroform_body(acroform)
                af_num = alloc()
                objects.append((af_num, 0, af_body))
            else:
                af_num = alloc()
                objects.append((af_num, 0, acroform_body(None)))
            objects.append((root_num, root_gen, _unparse_without(cast(pikepdf.Dictionary, root), ["/AcroForm"])
                            + b" /AcroForm " + _ref(af_num) + b" >>"))

        # --- write the update ---
        out = bytearray(data)
        if not out.endswith((b"\n", b"\r")):
            out += b"\n"
        offsets: dict[int, tuple[int, int]] = {}
        for num, gen, body in objects:
            if num in offsets:  # pragma: no cover - guard against a page that is also the catalog, etc.
                raise FastPathUnsupported("object rewritten twice")
            offsets[num] = (len(out), gen)
            out += b"%d %d obj\n" % (num, gen)
            out += body
            out += b"\nendobj\n"
        trailer_extra = b" /Root " + _ref(root_num, root_gen)
        info = trailer.get("/Info")
        if info is not None and info.is_indirect:
            trailer_extra += b" /Info " + _ref(*info.objgen)
        ids = trailer.get("/ID")
        first_id = bytes(ids[0]) if ids is not None and len(ids) == 2 else secrets.token_bytes(16)
        trailer_extra += b" /ID [<" + first_id.hex().encode() + b"> <" + secrets.token_hex(16).encode() + b">]"
        trailer_extra += b" /Prev %d" % prev
        if xref_stream:
            xs_num = alloc()
            offsets[xs_num] = (len(out), 0)
            entries = sorted(offsets.items())
            rows = b"".join(b"\x01" + off.to_bytes(4, "big") + gen.to_bytes(2, "big") for _, (off, gen) in entries)
            index = b" ".join(b"%d %d" % (a, n) for a, n in _subsections([e[0] for e in entries]))
            xref_at = len(out)
            out += b"%d 0 obj\n" % xs_num
            out += (b"<< /Type /XRef /Size %d /W [1 4 2] /Index [" % next_num + index + b"]" + trailer_extra
                    + b" /Length %d >>\nstream\n" % len(rows))
            out += rows + b"\nendstream\nendobj\n"
        else:
            xref_at = len(out)
            entries = sorted(offsets.items())
            out += b"xref\n"
            pos = 0
            for start, count in _subsections([e[0] for e in entries]):
                out += b"%d %d\n" % (start, count)
                for _, (off, gen) in entries[pos:pos + count]:
                    out += b"%010d %05d n\r\n" % (off, gen)
                pos += count
            out += b"trailer\n<< /Size %d" % next_num + trailer_extra + b" >>\n"
        out += b"startxref\n%d\n%%%%EOF\n" % xref_at

        # --- ByteRange and digest ---
        sig_offset = offsets[sig_num][0]
        br_at = out.index(_BR_PLACEHOLDER, sig_offset)
        contents_start = out.index(b"/Contents <", br_at) + len(b"/Contents ")
        contents_end = contents_start + 2 * reserve + 2
        br = b"/ByteRange [0 %d %d %d]" % (contents_start, contents_end, len(out) - contents_end)
        if len(br) > len(_BR_PLACEHOLDER):  # pragma: no cover - files over 9.9 GB
            raise FastPathUnsupported("file too large")
        out[br_at:br_at + len(_BR_PLACEHOLDER)] = br.ljust(len(_BR_PLACEHOLDER))
        view = memoryview(out)
        h = hashlib.sha256(view[:contents_start])
        h.update(view[contents_end:])
        digest = h.digest()
        view.release()
        return PreparedPdf(out, contents_start, contents_end, digest, field_name, when)


def _stream(dict_body: bytes, data: bytes) -> bytes:
    return b"<< " + dict_body + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _inherited(page: pikepdf.Dictionary, key: str) -> Any:
    node: Any = page
    depth = 0
    while node is not None and depth < 64:
        if key in node:
            return node[key]
        node = node.get("/Parent")
        depth += 1
    return None


def _subsections(nums: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in nums:
        if out and out[-1][0] + out[-1][1] == n:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((n, 1))
    return out
