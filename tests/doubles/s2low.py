"""A local S²LOW double: an HTTPS server with mutual TLS reproducing S²LOW's Helios API as its public source
(``libriciel/s2low``, ``public.ssl/``) writes it, for the tests of :mod:`parafe.transmission.s2low`.

What it checks, as the real server does: the client certificate (TLS handshake against its client CA, then the
certificate must belong to a registered user — S²LOW's ``User::authenticate``), the HTTP Basic login/password
of users that have one, the multipart field ``enveloppe``, empty files, SHA-1 duplicates (``isDuplicate``:
any transaction with the same SHA-1, whatever its authority), and that a transaction / PES_Retour belongs to
the caller's authority.

What it answers, in S²LOW's shapes: ``KO\\n<message>`` for the legacy authentication failures, the import XML
(``<import><id/><resultat/><message/></import>``, UTF-8), the status XML declared ISO-8859-1 but written in
UTF-8 (as ``HeliosAPIResponse`` does), the PES_Retour list with an empty ``resultat`` on success, the change
status XML. Statuses follow ``S2low\\Enum\\HeliosStatus``; each status request moves a transaction one step
along its progression (default posted 1 → transmitted 3 → acknowledged 4); the PES_ACQUIT served for 4 / 6 is
a schema-valid acknowledgement built with :func:`parafe.transmission.helios_simulator.build_acquit` (EtatAck 0 for a
refusal, 6).

Test controls: ``fail_next_import`` (KO answer), ``import_delay`` (slow answers), ``drop_status`` (status
requests cut without an answer), ``hold_import`` (the answer
waits until the event is set; ``import_received`` is set when the file is stored), ``progressions``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import html
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from parafe.security import pki
from parafe.transmission.helios_simulator import build_acquit

ACQUITTE, REFUSE = 4, 6


@dataclass
class DoubleUser:
    siren: str
    cert: pki.CertAndKey
    login: str | None = None
    password: str | None = None


@dataclass
class Transaction:
    id: int
    siren: str
    filename: str
    sha1: str
    data: bytes
    progression: list[tuple[int, str]]
    step: int = 0
    status_requests: int = 0
    last_shown: int | None = None  # the status the client was last told

    @property
    def status(self) -> tuple[int, str]:
        return self.progression[self.step]


@dataclass
class Retour:
    id: int
    siren: str
    name: str
    data: bytes
    read: bool = False
    date: str = field(default_factory=lambda: dt.datetime.now().strftime("%Y-%m-%d"))


DEFAULT_PROGRESSION = [(1, "Fichier bien reçu par la plate-forme S2low"),
                       (3, "Transmis au serveur Hélios"),
                       (ACQUITTE, "Acquittement reçu")]
REFUSED_PROGRESSION = [(1, "Fichier bien reçu par la plate-forme S2low"),
                       (3, "Transmis au serveur Hélios"),
                       (REFUSE, "Fichier refusé par Hélios")]


class S2lowDouble:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.server_ca = pki.create_ca("AC serveur du double S2LOW")
        self.client_ca = pki.create_ca("AC clients du double S2LOW")
        self.server_cert = pki.issue_server_cert(self.server_ca, ["127.0.0.1", "localhost"])
        self.users: dict[str, DoubleUser] = {}
        self.transactions: dict[int, Transaction] = {}
        self.retours: dict[int, Retour] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every authenticated request
        self.rejected: list[str] = []  # why requests were refused at the application level
        self.fail_next_import: str | None = None
        self.import_delay = 0.0
        self.drop_status = 0  # the next N status requests get no answer (connection closed: an outage)
        self.hold_import: threading.Event | None = None
        self.hold_only: str | None = None  # hold only the files whose name contains this
        self.import_received = threading.Event()
        self.posts: list[str] = []  # file name of every post that reached the import (duplicates included)
        self.next_progression: list[tuple[int, str]] | None = None
        self._next_id = 4000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- set-up -------------------------------------------------------------------------------------------

    def add_user(self, siren: str, login: str | None = None, password: str | None = None,
                 email: str = "tresorerie@collectivite.test") -> pki.CertAndKey:
        cert = pki.issue_user_cert(self.client_ca, email, f"Collectivité {siren}")
        self.users[cert.fingerprint] = DoubleUser(siren, cert, login, password)
        return cert

    def write_client_files(self, cert: pki.CertAndKey, name: str) -> tuple[Path, Path]:
        cert_path, key_path = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        pki.write_pem(cert, cert_path, key_path, overwrite=True)
        return cert_path, key_path

    def ca_file(self) -> Path:
        path = self.directory / "server-ca.pem"
        path.write_bytes(self.server_ca.cert_pem())
        return path

    def add_retour(self, siren: str, name: str, data: bytes) -> int:
        with self._lock:
            self._next_id += 1
            retour = Retour(self._next_id, siren, name, data)
            self.retours[retour.id] = retour
            return retour.id

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> S2lowDouble:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert_path, key_path = self.directory / "server.pem", self.directory / "server.key"
        pki.write_pem(self.server_cert, cert_path, key_path, overwrite=True)
        context.load_cert_chain(cert_path, key_path)
        context.verify_mode = ssl.CERT_REQUIRED  # Apache's SSLVerifyClient require
        context.load_verify_locations(cadata=self.client_ca.cert_pem().decode())
        double = self

        class Handler(_Handler):
            owner = double

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        threading.Thread(target=server.serve_forever, name="s2low-double", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.hold_import is not None:
            self.hold_import.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- the API ------------------------------------------------------------------------------------------

    def transactions_of(self, siren: str) -> list[Transaction]:
        return [t for t in self.transactions.values() if t.siren == siren]

    def import_file(self, user: DoubleUser, fields: dict[str, tuple[str | None, bytes]]) -> tuple[str, str, str]:
        """(id, resultat, message) as HeliosController::importAPIAction writes them."""
        if self.fail_next_import is not None:
            message, self.fail_next_import = self.fail_next_import, None
            return "", "KO", message
        if "enveloppe" not in fields or fields["enveloppe"][0] is None:
            return "", "KO", ("Aucune enveloppe trouvée : la taille de l'enveloppe dépasse probablement la taille "
                              "maximum")
        filename, data = fields["enveloppe"]
        if not data:
            return "", "KO", "Le fichier présenté est vide (0 octet)"
        sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        with self._lock:
            if any(t.sha1 == sha1 for t in self.transactions.values()):
                return "", "KO", "doublon détecté. Ce fichier a déjà été posté."
            self._next_id += 1
            progression = list(self.next_progression or DEFAULT_PROGRESSION)
            transaction = Transaction(self._next_id, user.siren, filename or "", sha1, data, progression)
            self.transactions[transaction.id] = transaction
        if self.hold_only is None:
            self.import_received.set()
        return str(transaction.id), "OK", "Téléchargement du fichier réussi."


def _xml_text(value: object) -> str:
    return html.escape(str(value), quote=True)


class _Handler(BaseHTTPRequestHandler):
    owner: S2lowDouble
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise

    def handle(self) -> None:
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, body: bytes, content_type: str = "text/xml", status: int = 200,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _user(self) -> DoubleUser | None:
        der = self.request.getpeercert(binary_form=True)
        if der is None:
            return None
        fingerprint = hashlib.sha256(der).hexdigest()
        user = next((u for fp, u in self.owner.users.items() if fp.replace(":", "").lower() == fingerprint), None)
        if user is None:
            self.owner.rejected.append("certificat inconnu")
            return None
        if user.login is not None:
            header = self.headers.get("Authorization", "")
            expected = "Basic " + base64.b64encode(f"{user.login}:{user.password}".encode()).decode()
            if header != expected:
                self.owner.rejected.append("identifiant ou mot de passe faux")
                return None
        return user

    def _params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        user = self._user()
        if user is not None:
            self.owner.requests.append(("GET", path))
        params = self._params()
        if path == "/api/test-connexion.php":
            self._send(b"OK" if user else "KO\nÉchec de l'authentification".encode(), "text/plain")
        elif path == "/modules/helios/api/helios_transac_get_status.php":
            self._status(user, params.get("transaction", ""))
        elif path == "/modules/helios/helios_download_acquit.php":
            self._acquit(user, params.get("id", ""))
        elif path == "/modules/helios/api/helios_get_list.php":
            self._list(user)
        elif path == "/modules/helios/api/helios_get_retour.php":
            self._get_retour(user, params.get("id", ""))
        elif path == "/modules/helios/api/helios_change_status.php":
            self._change_status(user, params.get("id", ""))
        else:
            self._send(b"not found", "text/plain", 404)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        user = self._user()
        if path != "/modules/helios/api/helios_importer_fichier.php":
            self._send(b"not found", "text/plain", 404)
            return
        if user is None:
            self._send("KO\nÉchec de l'authentification".encode(), "text/plain")
            return
        self.owner.requests.append(("POST", path))
        fields = _multipart(self.headers.get("Content-Type", ""), body)
        filename = (fields.get("enveloppe") or (None, b""))[0] or ""
        self.owner.posts.append(filename)
        tid, result, message = self.owner.import_file(user, fields)
        hold = self.owner.hold_import
        if result == "OK" and hold is not None and (self.owner.hold_only is None or self.owner.hold_only in filename):
            if self.owner.hold_only is not None:
                self.owner.import_received.set()
            hold.wait(120)
        if result == "OK" and self.owner.import_delay:  # slow while storing the file
            time.sleep(self.owner.import_delay)
        answer = ('<?xml version="1.0" encoding="UTF-8"?>\n<import>\n'
                  f"  <id>{tid}</id>\n  <resultat>{result}</resultat>\n  <message>{_xml_text(message)}</message>\n"
                  "</import>\n").encode()
        with contextlib.suppress(OSError):  # the client is gone (killed): S²LOW keeps the transaction all the same
            self._send(answer)

    # HeliosAPIResponse::displayAndExit: declared ISO-8859-1, written in UTF-8
    def _transaction_xml(self, values: dict[str, object]) -> None:
        inner = "".join(f"<{k}>{_xml_text(v)}</{k}>" for k, v in values.items())
        self._send(('<?xml version="1.0" encoding="ISO-8859-1"?>\n<transaction >\n        '
                    f"{inner}\n</transaction>\n").encode())

    def _status(self, user: DoubleUser | None, raw_id: str) -> None:
        with self.owner._lock:
            drop = self.owner.drop_status > 0
            if drop:
                self.owner.drop_status -= 1
        if drop:
            self.close_connection = True
            return
        values: dict[str, object] = {"id": raw_id or 0, "resultat": "KO", "message": "", "status": ""}
        transaction = self.owner.transactions.get(int(raw_id)) if raw_id.isdigit() else None
        if not raw_id.isdigit() or int(raw_id) == 0:
            values["message"] = "Pas de numéro de transaction."
        elif user is None:
            values["message"] = "Échec de l'authentification"
        elif transaction is None:
            values["message"] = "Numéro de transaction invalide"
        elif transaction.siren != user.siren:
            values["message"] = "Accès refusé"
        else:
            with self.owner._lock:
                transaction.status_requests += 1
                status, message = transaction.status
                transaction.last_shown = status
                if transaction.step < len(transaction.progression) - 1:
                    transaction.step += 1
            values.update(resultat="OK", status=status, message=message)
        self._transaction_xml(values)

    def _acquit(self, user: DoubleUser | None, raw_id: str) -> None:
        transaction = self.owner.transactions.get(int(raw_id)) if raw_id.isdigit() else None
        if user is None or transaction is None or transaction.siren != user.siren:
            self._send(b"", "text/html", 302, {"Location": "/"})  # S²LOW redirects with an error in session
            return
        status = transaction.last_shown
        if status not in (ACQUITTE, REFUSE):
            self._send(b"", "text/html", 302, {"Location": "/modules/helios/index.php"})
            return
        self._send(build_acquit(transaction.data, ok=status == ACQUITTE), "text/xml")

    def _list(self, user: DoubleUser | None) -> None:
        if user is None:
            self._send('<?xml version="1.0"?>\n<liste><resultat>KO</resultat><message>Échec de '
                       "l'authentification</message></liste>\n".encode())
            return
        items = "".join(f"<pes_retour><id>{r.id}</id><nom>{_xml_text(r.name)}</nom><date>{r.date}</date>"
                        "</pes_retour>" for r in self.owner.retours.values() if r.siren == user.siren and not r.read)
        self._send(('<?xml version="1.0"?>\n<liste><idColl>1</idColl><resultat/><message>liste réussi</message>'
                    f"<dateDemande>{dt.datetime.now():%Y-%m-%d %I:%M:%S}</dateDemande>{items}</liste>\n").encode())

    def _get_retour(self, user: DoubleUser | None, raw_id: str) -> None:
        retour = self.owner.retours.get(int(raw_id)) if raw_id.isdigit() else None
        message = None
        if user is None:
            message = "Échec de l'authentification"
        elif retour is None:
            message = "retour id n'est pas correcte"
        elif retour.siren != user.siren:
            message = "Accès refusé"
        if message is not None or retour is None:
            self._send((f'<?xml version="1.0"?>\n<get_retour><id>{_xml_text(raw_id)}</id><resultat>KO</resultat>'
                        f"<message>{_xml_text(message)}</message></get_retour>\n").encode())
            return
        self._send(retour.data, "text/xml")

    def _change_status(self, user: DoubleUser | None, raw_id: str) -> None:
        retour = self.owner.retours.get(int(raw_id)) if raw_id.isdigit() else None
        if user is None:
            result, message = "KO", "Échec de l'authentification"
        elif retour is None or retour.siren != user.siren:
            result, message = "KO", "Changement de status est echoué."
        else:
            retour.read = True
            result, message = "OK", "reussi de changer status"
        self._send((f'<?xml version="1.0"?>\n<transaction><idRetour>{_xml_text(raw_id)}</idRetour>'
                    f"<resultat>{result}</resultat><message>{_xml_text(message)}</message></transaction>\n"
                    ).encode())


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The form's fields: name → (file name or None, content)."""
    if not content_type.startswith("multipart/form-data"):
        return {}
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields
