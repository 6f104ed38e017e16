"""What one exchange tells about a client's behaviour (pure: no web framework, no database).

The connectors' recording point (:mod:`parafe.connectors.compliance`) calls :func:`classify` once per answered
request with what it saw on the wire; the result says which counters to increment, which example to keep and
which pending duty of the client opens or closes:

- listings (``listRemaining*``, ``history``, PROPFIND on ``out/``) are counted per hour; their *target* (the
  operation and the folder, siren or document it lists) is what the polling interval is measured on, so that
  one polling round listing several folders or several kinds of returns is not taken for fast polling;
- a return fetched from WebDAV ``out/`` opens a *fetched* duty that its DELETE closes (spec §4.3);
- a refused WebDAV deposit opens a *blocked* duty on its ``in/`` path that a DELETE closes (spec §4.5);
- refusals are counted by connector and error code, with NomFic, duplicate and oversize refusals apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

REST_PREFIX = "/parapheur-ws/rest/v1"
SOAP_PREFIX = "/parapheur-soap"
WEBDAV_PREFIX = "/partage/webdav/clients"
OSS_PREFIX = "/oss"

# error codes of the catalogue (parafe.domain.errors) the rules single out
NOMFIC_CODES = frozenset({137})  # « NomFic » déjà utilisé
DUPLICATE_CODES = frozenset({144})  # « Doublon »
NAME_CODES = frozenset({166})  # file name longer than 150 characters (spec §2.4)
OVERSIZE_CODES = frozenset({147})  # « Fichier trop volumineux »
CERT_CODES = {161: "missing", 162: "expired", 163: "revoked", 164: "unknown_ca", 132: "unknown_user"}
UNKNOWN_OPERATION_CODES = frozenset({179, 180})  # REST: no such route / method

SOAP_LISTINGS = frozenset({"listRemainingAcknowledgements", "listRemainingPesRetour", "listRemainingChorus",
                           "listRemainingSignedDocs", "history"})
SOAP_DEPOSITS = frozenset({"upload", "uploadOnDemand", "otpUpload", "uploadBSMS"})
# Operations the interface document marks DEPRECATED (§2.5.16: getSmsUrl, replaced by getMultiIdsSmsUrl).
SOAP_DEPRECATED = frozenset({"getSmsUrl"})

_REST_REMAINING = re.compile(r"^/documents/v2/([^/]+)/(ack|chorus|pes-retour|signed)/remaining$")
_REST_HISTORY = re.compile(r"^/documents/v2/([^/]+)/history$")
_REST_RETURN_DOWNLOAD = re.compile(r"^/documents/v2/([^/]+)/(ack|chorus|pes-retour)/download$")
SOAP_RETURN_DOWNLOADS = frozenset({"downloadAcknowledgement", "downloadPesRetour", "downloadChorus"})
_REST_UPLOAD = re.compile(r"^/documents/(v2/(otp/)?[^/]+/[^/]+|ondemand/[^/]+)/upload$")


@dataclass
class Observation:
    """What to record about one exchange."""

    connector: str
    kinds: list[str] = field(default_factory=list)  # counters to increment
    listing_target: str | None = None  # a listing: the thing listed (polling interval measured per target)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (rule, detail)
    opens: list[tuple[str, str]] = field(default_factory=list)  # pending duties (kind, key) opened
    closes: list[tuple[str, str]] = field(default_factory=list)  # … and closed


def describe_target(target: str) -> str:
    """A listing target as people read it (« REST ack/remaining, SIREN 123456789 », « PROPFIND 1234…/out/x »)."""
    connector, _, rest = target.partition(":")
    if connector == "rest":
        what, _, ref = rest.partition(":")
        return f"REST {what} du document {ref}" if what == "history" else f"REST {what}, SIREN {ref}"
    if connector == "soap":
        return f"SOAP {rest}"
    if connector == "webdav":
        return f"PROPFIND {rest}/"
    return target


def connector_of(path: str) -> str | None:
    for prefix, name in ((REST_PREFIX, "rest"), (SOAP_PREFIX, "soap"), (WEBDAV_PREFIX, "webdav"),
                         (OSS_PREFIX, "oss")):
        if path == prefix or path.startswith(prefix + "/"):
            return name
    return None


def _refusal(obs: Observation, connector: str, code: int, what: str) -> None:
    obs.kinds.append(f"refused:{connector}:{code}")
    obs.examples.append(("deposit_refusals", f"{what} → {code}"))
    if code in NOMFIC_CODES:
        obs.kinds.append("nomfic")
        obs.examples.append(("nomfic", what))
    if code in NAME_CODES:
        obs.kinds.append("nomfic")
        obs.examples.append(("nomfic", f"{what} (nom de fichier trop long)"))
    if code in DUPLICATE_CODES:
        obs.kinds.append("duplicate")
        obs.examples.append(("duplicates", what))
    if code in OVERSIZE_CODES:
        obs.kinds.append("oversize")
        obs.examples.append(("oversize", what))


def _webdav_parts(path: str) -> tuple[str, list[str]]:
    """(key, segments) of a WebDAV path: ``SIREN/in/…`` decoded, without trailing slash."""
    rest = unquote(path[len(WEBDAV_PREFIX):]).strip("/")
    return rest, [s for s in rest.split("/") if s]


def classify(method: str, path: str, status: int, error_code: int | None = None,
             operation: str | None = None) -> Observation | None:
    """The observation of one answered request, None when it is not a connector's."""
    connector = connector_of(path)
    if connector is None:
        return None
    obs = Observation(connector)
    obs.kinds.append(f"calls:{connector}")
    failed = status >= 400
    if error_code in CERT_CODES:
        obs.kinds.append(f"tls:{CERT_CODES[error_code]}")
        obs.examples.append(("certificate", f"{method} {path} → {error_code}"))
        return obs
    if connector == "rest":
        sub = path[len(REST_PREFIX):]
        what = f"{method} {sub}"
        if error_code in UNKNOWN_OPERATION_CODES:
            obs.kinds.append("unknown_operation")
            obs.examples.append(("unknown_operations", what))
        elif method == "GET" and (m := _REST_REMAINING.match(sub)):
            obs.listing_target = f"rest:{m.group(2)}/remaining:{m.group(1)}"
        elif method == "GET" and (m := _REST_HISTORY.match(sub)):
            obs.listing_target = f"rest:history:{m.group(1)}"
        elif method == "GET" and _REST_RETURN_DOWNLOAD.match(sub) and failed:
            obs.kinds.append("download_unknown")
            obs.examples.append(("download_unknown", f"{what} → {error_code}"))
        elif method == "POST" and _REST_UPLOAD.match(sub):
            if failed and error_code is not None:
                _refusal(obs, connector, error_code, what)
            elif not failed:
                obs.kinds.append("deposit:rest")
    elif connector == "soap":
        what = f"{operation or '?'}"
        if method == "POST":
            if operation in SOAP_DEPRECATED:
                obs.kinds.append("deprecated_operation")
                obs.examples.append(("deprecated_operations", what))
            if failed:
                obs.kinds.append("soap_fault")
                obs.examples.append(("soap_faults", f"{what} → {error_code}"))
            if operation is None and failed and error_code in OVERSIZE_CODES:
                _refusal(obs, connector, error_code, "SOAP (corps trop volumineux)")
            elif operation is None and failed:
                obs.kinds.append("unknown_operation")
                obs.examples.append(("unknown_operations", f"SOAP → {error_code}"))
            elif operation in SOAP_RETURN_DOWNLOADS and failed:
                obs.kinds.append("download_unknown")
                obs.examples.append(("download_unknown", f"SOAP {operation} → {error_code}"))
            elif operation in SOAP_LISTINGS:
                obs.listing_target = f"soap:{operation}"
            elif operation in SOAP_DEPOSITS:
                if failed and error_code is not None:
                    _refusal(obs, connector, error_code, f"SOAP {operation}")
                elif not failed:
                    obs.kinds.append("deposit:soap")
    elif connector == "webdav":
        key, segments = _webdav_parts(path)
        area = segments[1] if len(segments) > 1 else ""
        if method == "PROPFIND" and area == "out":
            obs.listing_target = f"webdav:{key}"
        elif area == "out" and len(segments) > 2 and not failed:
            if method == "GET":
                obs.opens.append(("fetched", key))
            elif method == "DELETE":
                obs.closes.append(("fetched", key))
        elif area == "in" and len(segments) > 2:
            if method == "PUT":
                if failed and error_code is not None:
                    _refusal(obs, connector, error_code, f"PUT {key}")
                    obs.opens.append(("blocked", key))
                elif not failed:
                    obs.kinds.append("deposit:webdav")
            elif method == "DELETE":
                obs.closes.append(("blocked", key))
    elif connector == "oss" and failed and error_code is not None and method == "POST":
        _refusal(obs, connector, error_code, f"{method} {path[len(OSS_PREFIX):]}")
    if obs.listing_target is not None:
        obs.kinds.append("listing")
    return obs
