"""The signing helper starts itself: ``parafe-signer install`` / ``uninstall`` / ``open-url`` / ``start``.

``install`` records, for the current user only (no administrator rights):

- ``$XDG_CONFIG_HOME/parafe-signer/config.json`` — the key options (PKCS#12 path or PKCS#11 module, token and
  key labels, where the PIN or password comes from: a file or an environment variable name, never the secret
  itself), the allowed portal origins and the port;
- ``$XDG_DATA_HOME/applications/parafe-signer.desktop`` — a freedesktop desktop entry with
  ``MimeType=x-scheme-handler/parafe-signer;`` whose ``Exec`` is ``parafe-signer open-url %u``, registered as the
  default handler of ``parafe-signer://`` with ``xdg-mime default`` when available (and
  ``update-desktop-database``);
- ``$XDG_CONFIG_HOME/autostart/parafe-signer.desktop`` — started with the session (``parafe-signer start``).

``open-url parafe-signer://start?origin=https://…`` (what the portal's « Lancer l'assistant » link opens) starts
serving for that origin — only if it is one of the installed origins, so that no other web site can start the
helper for itself — and does nothing when a helper already answers on the port. Without a terminal, the PIN
comes from the configured file or variable, else from a graphical prompt (``zenity`` or ``kdialog``).
``uninstall`` removes the three files and the association. Windows and macOS equivalents: docs/portal.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SCHEME = "parafe-signer"
DESKTOP_FILE = "parafe-signer.desktop"
MIME = f"x-scheme-handler/{SCHEME}"
KEY_OPTIONS = ("p12", "password_file", "password_env", "pkcs11_lib", "token_label", "key_label", "cert_label",
               "pin_file", "pin_env")


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def config_path() -> Path:
    return config_home() / "parafe-signer" / "config.json"


def desktop_path() -> Path:
    return data_home() / "applications" / DESKTOP_FILE


def autostart_path() -> Path:
    return config_home() / "autostart" / DESKTOP_FILE


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without path or trailing slash; ValueError otherwise."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"adresse de parapheur invalide : {origin!r} (https://hôte[:port] attendu)")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _exec_quote(arg: str) -> str:
    """An argument of a desktop entry's ``Exec`` key (quoted per the Desktop Entry Specification)."""
    if arg in ("%u", "%U", "%f", "%F"):  # field codes stay bare
        return arg
    if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`%='):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{escaped.replace("%", "%%")}"'


def helper_command() -> list[str]:
    """How to run the helper: the ``parafe-signer`` script next to this Python, else ``python -m parafe.signer``."""
    script = Path(sys.executable).parent / "parafe-signer"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "parafe.signer"]


def _entry(name: str, comment: str, args: list[str], extra: list[str]) -> str:
    command = " ".join(_exec_quote(a) for a in helper_command() + args)
    lines = ["[Desktop Entry]", "Type=Application", f"Name={name}", f"Comment={comment}",
             f"Exec={command}", "Terminal=false", *extra]
    return "\n".join(lines) + "\n"


def desktop_entry() -> str:
    return _entry("Assistant de signature Parafe", "Signe les documents du parapheur avec votre certificat",
                  ["open-url", "%u"], ["NoDisplay=true", f"MimeType={MIME};", "Categories=Office;"])


def autostart_entry() -> str:
    return _entry("Assistant de signature Parafe", "Démarre l'assistant de signature Parafe avec la session",
                  ["start"], ["NoDisplay=true", "X-GNOME-Autostart-enabled=true"])


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _quiet(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, check=False, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def install(args: argparse.Namespace) -> list[str]:
    """Write the configuration, the desktop entry and the autostart entry; register the URL scheme."""
    if not args.origin:
        raise SystemExit("parafe-signer : indiquez --origin https://votre-parapheur (le site autorisé)")
    if not args.p12 and not args.pkcs11_lib:
        raise SystemExit("parafe-signer : indiquez --p12 FICHIER ou --pkcs11-lib BIBLIOTHEQUE")
    try:
        origins = sorted({normalise_origin(o) for o in args.origin})
    except ValueError as exc:
        raise SystemExit(f"parafe-signer : {exc}") from None
    config: dict[str, Any] = {"origins": origins, "port": args.port}
    for name in KEY_OPTIONS:
        value = getattr(args, name, None)
        if value:
            config[name] = str(Path(value).resolve()) if name in ("p12", "password_file", "pin_file") else value
    _write(config_path(), json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    config_path().chmod(0o600)
    _write(desktop_path(), desktop_entry())
    _write(autostart_path(), autostart_entry())
    done = [f"Configuration : {config_path()}", f"Gestionnaire des liens {SCHEME}:// : {desktop_path()}",
            f"Démarrage avec la session : {autostart_path()}"]
    if shutil.which("update-desktop-database"):
        _quiet(["update-desktop-database", str(desktop_path().parent)])
    if shutil.which("xdg-mime"):
        ok = _quiet(["xdg-mime", "default", DESKTOP_FILE, MIME])
        done.append("Associé aux liens parafe-signer:// (xdg-mime)." if ok else
                    "xdg-mime a échoué : associez parafe-signer.desktop aux liens parafe-signer:// à la main.")
    else:
        done.append("xdg-mime absent : l'association repose sur la base des applications du bureau.")
    return done


def _drop_association(path: Path) -> None:
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not (line.startswith(f"{MIME}=") and DESKTOP_FILE in line)]
    if kept != lines:
        path.write_text("\n".join(kept) + "\n", encoding="utf-8")


def uninstall() -> list[str]:
    removed = []
    for path in (desktop_path(), autostart_path(), config_path()):
        if path.exists():
            path.unlink()
            removed.append(str(path))
    _drop_association(config_home() / "mimeapps.list")
    _drop_association(data_home() / "applications" / "mimeapps.list")
    if shutil.which("update-desktop-database") and desktop_path().parent.exists():
        _quiet(["update-desktop-database", str(desktop_path().parent)])
    return [f"Supprimé : {p}" for p in removed] or ["Rien à supprimer : l'assistant n'était pas installé."]


def load_config() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SystemExit("parafe-signer : l'assistant n'est pas installé (lancez « parafe-signer install »)") \
            from None
    if not isinstance(data, dict) or not data.get("origins"):
        raise SystemExit(f"parafe-signer : configuration invalide ({config_path()})")
    return data


def parse_url(url: str, allowed: list[str]) -> str:
    """The origin asked by a ``parafe-signer://start?origin=…`` URL, if it is one of ``allowed``."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME or parts.netloc != "start":
        raise SystemExit(f"parafe-signer : lien non reconnu : {url!r}")
    wanted = (parse_qs(parts.query).get("origin") or [""])[0]
    try:
        origin = normalise_origin(wanted)
    except ValueError as exc:
        raise SystemExit(f"parafe-signer : {exc}") from None
    if origin not in allowed:
        raise SystemExit(f"parafe-signer : le parapheur {origin} n'est pas autorisé sur ce poste "
                         f"(autorisés : {', '.join(allowed)} ; voir « parafe-signer install --origin »)")
    return origin


def answering(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _graphical_secret(prompt: str) -> str | None:
    for cmd in (["zenity", "--password", f"--title={prompt}"], ["kdialog", "--password", prompt]):
        if shutil.which(cmd[0]):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode == 0:
                return done.stdout.rstrip("\n")
            return None
    return None


def serve_installed(origins: list[str], serve: Callable[[argparse.Namespace], int], default_port: int) -> int:
    """Serve the installed key for ``origins`` on the installed port (``open-url`` and ``start``): ``serve`` is
    the command line's ``serve`` command, ``default_port`` its port when the configuration names none."""
    config = load_config()
    port = int(config.get("port") or default_port)
    if answering(port):
        print(f"parafe-signer : l'assistant répond déjà sur le port {port}.", flush=True)
        return 0
    namespace = argparse.Namespace(**{name: config.get(name) for name in KEY_OPTIONS}, origin=origins, port=port)
    if not sys.stdin.isatty():
        secret_given = namespace.pin_file or namespace.pin_env or namespace.password_file or namespace.password_env
        if not secret_given:
            prompt = "Code PIN de votre carte" if namespace.pkcs11_lib else "Mot de passe de votre certificat"
            value = _graphical_secret(f"Parafe — {prompt}")
            if value is None:
                raise SystemExit("parafe-signer : aucun moyen de demander le code PIN (ni terminal, ni zenity, "
                                 "ni kdialog) : installez avec --pin-file ou --pin-env")
            os.environ["PARAFE_SIGNER_SECRET"] = value
            if namespace.pkcs11_lib:
                namespace.pin_env = "PARAFE_SIGNER_SECRET"
            else:
                namespace.password_env = "PARAFE_SIGNER_SECRET"
    return serve(namespace)
