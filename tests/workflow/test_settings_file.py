"""Workflow settings come from the environment, else from the PARAFE_CONFIG TOML file, else defaults."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from parafe.config import workflow_settings


def test_toml_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PARAFE_") and name not in ("PARAFE_HOME",):
            monkeypatch.delenv(name)
    config = tmp_path / "parafe.toml"
    config.write_text('smtp_host = "mail.exemple.fr"\nsmtp_port = 2525\nsmtp_starttls = true\npurge_days = 30\n'
                      'mail_from = "Parapheur <parapheur@exemple.fr>"\n', encoding="utf-8")
    monkeypatch.setenv("PARAFE_CONFIG", str(config))
    settings = workflow_settings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == ("mail.exemple.fr", 2525, True)
    assert settings.purge_days == 30
    assert settings.mail_from == "Parapheur <parapheur@exemple.fr>"
    assert settings.otp_digits == 6  # default

    monkeypatch.setenv("PARAFE_PURGE_DAYS", "7")  # the environment wins
    assert workflow_settings().purge_days == 7

    time.sleep(0.01)
    config.write_text('smtp_host = "autre.exemple.fr"\n', encoding="utf-8")  # a changed file is re-read
    os.utime(config, None)
    assert workflow_settings().smtp_host == "autre.exemple.fr"
    assert workflow_settings().smtp_port == 25
