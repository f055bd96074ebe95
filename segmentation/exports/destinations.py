"""Delivery of a finished run file (decisions 41). The internal copy is always written first.

Each destination validates its settings on save (`destination_validate`) and delivers atomically:
- folder: a dot-prefixed temporary name in the target folder, fsync, then `os.replace`;
- s3: one `Storage.save` through a configured `django.core.files.storage.storages` alias;
- webhook: a streamed POST of text/csv signed with HMAC-SHA256; only 2xx is success. Private,
  loopback and link-local addresses are refused unless settings.TESSERA_WEBHOOK_ALLOW_PRIVATE.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import os
import shutil
import socket
import urllib.parse
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import InvalidStorageError, storages

from segmentation.models import Export, ExportRun

SIGNATURE_HEADER = "X-Tessera-Signature"
WEBHOOK_TIMEOUT = 60
READ_BLOCK = 256 * 1024


class DeliveryError(Exception):
    """Delivery failed; the message is shown on the run."""


def _folder_roots() -> list[Path]:
    return [Path(p).resolve() for p in getattr(settings, "TESSERA_EXPORT_FOLDER_ROOTS", None) or []]


def destination_validate(*, kind: str, config: dict) -> dict:
    """Normalised destination settings, or ValidationError({"destination": ...})."""
    config = dict(config or {})

    def fail(message):
        raise ValidationError({"destination": message})

    if kind == Export.Destination.DOWNLOAD:
        return {}
    if kind == Export.Destination.FOLDER:
        path = str(config.get("path") or "").strip()
        if not path or not os.path.isabs(path):
            fail("Give the folder as an absolute path.")
        roots = _folder_roots()
        resolved = Path(path).resolve()
        if roots and not any(resolved == r or r in resolved.parents for r in roots):
            fail("The folder is outside TESSERA_EXPORT_FOLDER_ROOTS.")
        return {"path": path}
    if kind == Export.Destination.S3:
        alias = str(config.get("storage") or "").strip()
        try:
            storages[alias]
        except (InvalidStorageError, KeyError):
            fail(f"“{alias}” is not a storage configured in settings.STORAGES.")
        prefix = str(config.get("prefix") or "").strip().lstrip("/")
        if ".." in prefix.split("/"):
            fail("The prefix may not contain “..”.")
        return {"storage": alias, "prefix": prefix}
    if kind == Export.Destination.WEBHOOK:
        url = str(config.get("url") or "").strip()
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            fail("Give an http:// or https:// URL.")
        secret = str(config.get("secret") or "")
        if len(secret) < 16:
            fail("The signing secret needs at least 16 characters.")
        check_webhook_host(parts.hostname, fail=fail)
        return {"url": url, "secret": secret}
    fail(f"Unknown destination {kind!r}.")


def check_webhook_host(host: str, *, fail=None) -> None:
    """Refuse hosts that resolve to private, loopback, link-local or reserved addresses."""
    if getattr(settings, "TESSERA_WEBHOOK_ALLOW_PRIVATE", False):
        return
    fail = fail or (lambda m: (_ for _ in ()).throw(DeliveryError(m)))
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        fail(f"The host {host} cannot be resolved.")
        return
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved or addr.is_multicast:
            fail(f"{host} resolves to a private or link-local address ({addr}); webhooks there are not allowed.")


def deliver(*, export: Export, run: ExportRun, path: str, filename: str, remember_temp) -> str:
    """Deliver the internal file at `path`; returns a description of where it went."""
    kind = export.destination_kind
    config = export.destination or {}
    if kind == Export.Destination.DOWNLOAD:
        return "internal storage (download)"
    if kind == Export.Destination.FOLDER:
        return _deliver_folder(config["path"], path, filename, remember_temp)
    if kind == Export.Destination.S3:
        return _deliver_storage(config["storage"], config.get("prefix", ""), path, filename)
    if kind == Export.Destination.WEBHOOK:
        return _deliver_webhook(config["url"], config["secret"], path, filename, export, run)
    raise DeliveryError(f"Unknown destination {kind!r}")


def _deliver_folder(folder: str, path: str, filename: str, remember_temp) -> str:
    target = os.path.join(folder, filename)
    temp = os.path.join(folder, f".{filename}.{os.getpid()}.part")
    try:
        remember_temp(temp)
        with open(path, "rb") as src, open(temp, "wb") as dst:
            shutil.copyfileobj(src, dst, READ_BLOCK)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(temp, target)
    except OSError as exc:
        _unlink(temp)
        raise DeliveryError(f"Cannot write to folder {folder}: {exc.strerror or exc}") from exc
    return target


def _deliver_storage(alias: str, prefix: str, path: str, filename: str) -> str:
    storage = storages[alias]
    name = f"{prefix.rstrip('/')}/{filename}" if prefix else filename
    try:
        if storage.exists(name):
            storage.delete(name)
        with open(path, "rb") as fh:
            saved = storage.save(name, File(fh, name=filename))
    except Exception as exc:  # any storage backend error is a delivery failure
        raise DeliveryError(f"Upload to storage “{alias}” failed: {exc}") from exc
    return f"{alias}:{saved}"


def sign_file(path: str, secret: str) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    with open(path, "rb") as fh:
        while block := fh.read(READ_BLOCK):
            mac.update(block)
    return "sha256=" + mac.hexdigest()


def _deliver_webhook(url: str, secret: str, path: str, filename: str, export: Export, run: ExportRun) -> str:
    parts = urllib.parse.urlsplit(url)
    check_webhook_host(parts.hostname)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=WEBHOOK_TIMEOUT)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    headers = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Length": str(os.path.getsize(path)),
        "Content-Disposition": f'attachment; filename="{filename}"',
        SIGNATURE_HEADER: sign_file(path, secret),
        "X-Tessera-Export": str(export.pk),
        "X-Tessera-Run": str(run.pk),
        "User-Agent": "Tessera-Export/1",
    }
    try:
        with open(path, "rb") as body:  # http.client streams a file body block by block
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            response.read(4096)
    except OSError as exc:
        raise DeliveryError(f"Webhook {url} unreachable: {exc}") from exc
    finally:
        conn.close()
    if not 200 <= response.status < 300:
        raise DeliveryError(f"Webhook {url} answered {response.status} {response.reason}")
    return url


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
