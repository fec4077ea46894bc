"""The model store: datasets, checkpoints and integer model versions at any fsspec URL.

Plain paths, `file://`, `s3://`, `gs://` and `az://` all work the same way. Endpoints of emulated or
S3-compatible stores come from the standard variables (`AWS_ENDPOINT_URL`, `STORAGE_EMULATOR_HOST`,
`AZURE_STORAGE_CONNECTION_STRING`). This module must not import TensorFlow: the function endpoints
read models through it and carry no TF.

A version is visible only when complete. `publish_version` uploads everything else first, then
`saved_model.pb`, then `metadata.json` LAST, and metadata.json carries a manifest of every file with
its size; readers list a version only when metadata.json exists and the manifest matches what is
there. On local stores the version is assembled in a hidden folder and renamed into place atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec
from fsspec.implementations.local import LocalFileSystem

from workload.errors import UserError

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
GRAPH_FILE = "saved_model.pb"
SCHEMES = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "az": "az", "abfs": "az"}
CACHE_ENV = "CLOUD_AI_CACHE"


def open_url(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the path inside it for URL, with emulator endpoints taken from the environment."""
    scheme = urlparse(url).scheme
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        local = url[len("file://") :] if url.startswith("file://") else url
        return LocalFileSystem(auto_mkdir=True), str(Path(local).expanduser().resolve())
    if scheme not in SCHEMES:
        raise UserError(
            f"store URL {url!r} has an unknown scheme {scheme!r}: use a path, file://, s3://, gs:// or az://"
        )
    path = url.split("://", 1)[1].rstrip("/")
    if not path:
        raise UserError(f"store URL {url!r} names no bucket or container")
    return _filesystem(SCHEMES[scheme]), path


def _filesystem(protocol: str) -> fsspec.AbstractFileSystem:
    options: dict[str, Any] = {}
    if protocol == "s3" and os.environ.get("AWS_ENDPOINT_URL"):
        options["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    if protocol == "gcs":
        # gcsfs probes a gRPC bucket type that hangs for a minute per bucket against emulators.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            options["token"] = "anon"
    if protocol == "az":
        if os.environ.get("AZURE_STORAGE_CONNECTION_STRING"):
            options["connection_string"] = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
        elif os.environ.get("AZURE_STORAGE_ACCOUNT_NAME"):
            options.update(account_name=os.environ["AZURE_STORAGE_ACCOUNT_NAME"], anon=False)
    return fsspec.filesystem(protocol, **options)


def _files_under(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, int]:
    """Relative path -> size of every file below ROOT (fresh listing, no stale cache)."""
    fs.invalidate_cache()
    if not fs.exists(root):
        return {}
    found = fs.find(root, detail=True)
    prefix = root.rstrip("/") + "/"
    return {
        name[len(prefix) :]: int(info.get("size") or 0)
        for name, info in found.items()
        if info.get("type") != "directory" and name.startswith(prefix) and not name.endswith("/")
    }


def _local_files(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()
    }


def upload_order(relative_paths: list[str]) -> list[str]:
    """Everything else first, then saved_model.pb, then metadata.json: the order that makes a version safe."""

    def rank(path: str) -> tuple[int, str]:
        return ({GRAPH_FILE: 1, METADATA_FILE: 2}.get(path, 0), path)

    return sorted(relative_paths, key=rank)


class ModelStore:
    """Integer model versions, checkpoints and datasets under one store URL (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = open_url(url)
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def _models(self, name: str) -> str:
        return f"{self.root}/models/{name}"

    def _all_version_numbers(self, name: str) -> list[int]:
        """Every integer folder, complete or not: new versions must go above all of them."""
        self.fs.invalidate_cache()
        folder = self._models(name)
        if not self.fs.exists(folder):
            return []
        names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(folder, detail=False)]
        return sorted(int(n) for n in names if n.isdigit())

    def read_metadata(self, name: str, version: int) -> dict[str, Any] | None:
        """A version's metadata.json, or None when it is missing or unreadable."""
        path = f"{self._models(name)}/{version}/{METADATA_FILE}"
        try:
            with self.fs.open(path, "rb") as handle:
                metadata = json.loads(handle.read())
        except (FileNotFoundError, ValueError):
            return None
        return metadata if isinstance(metadata, dict) else None

    def is_complete(self, name: str, version: int) -> bool:
        """True when metadata.json exists and every file of its manifest is there with its size."""
        metadata = self.read_metadata(name, version)
        manifest = (metadata or {}).get("manifest")
        if not isinstance(manifest, dict) or not manifest:
            return False
        present = _files_under(self.fs, f"{self._models(name)}/{version}")
        return all(present.get(path) == size for path, size in manifest.items())

    def versions(self, name: str) -> list[int]:
        """Complete versions of model NAME, ascending."""
        return [v for v in self._all_version_numbers(name) if self.is_complete(name, v)]

    def latest_version(self, name: str) -> int | None:
        """The largest complete version (the one to serve), or None."""
        complete = self.versions(name)
        return complete[-1] if complete else None

    def download_version(
        self, name: str, version: int, dest: Path, only: Collection[str] | None = None
    ) -> Path:
        """Copy one complete version's files (or ONLY those of them) and its metadata.json into DEST.

        Each file is checked against the manifest's size, so a version replaced mid-download is an error
        rather than a mix of two models.
        """
        metadata = self.read_metadata(name, version)
        if not self.is_complete(name, version) or metadata is None:
            raise UserError(f"model {name!r} version {version} is not a complete version in {self.url}")
        manifest: dict[str, int] = metadata["manifest"]
        dest.mkdir(parents=True, exist_ok=True)
        source = f"{self._models(name)}/{version}"
        for relative in [p for p in manifest if only is None or p in only] + [METADATA_FILE]:
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(f"{source}/{relative}", str(target))
            if relative in manifest and target.stat().st_size != manifest[relative]:
                raise OSError(f"{relative} of {name} version {version} changed while it was downloaded")
        return dest

    def publish_version(self, name: str, local_dir: Path) -> int:
        """Publish LOCAL_DIR (which holds a metadata.json) as the next version of NAME; return its number.

        The number and a manifest of every file with its size are written into metadata.json, which is
        uploaded last so that readers never see a half-written version.
        """
        metadata_path = local_dir / METADATA_FILE
        metadata = json.loads(metadata_path.read_text()) if metadata_path.exists() else {}
        files = {p: s for p, s in _local_files(local_dir).items() if p != METADATA_FILE}
        if GRAPH_FILE not in files:
            raise ValueError(f"{local_dir} holds no {GRAPH_FILE}: not a SavedModel folder")
        if self.is_local:
            return self._publish_local(name, local_dir, files, metadata)
        version = max(self._all_version_numbers(name), default=0) + 1
        target = f"{self._models(name)}/{version}"
        for relative in upload_order(list(files)):
            self.fs.put_file(str(local_dir / relative), f"{target}/{relative}")
        self._write_metadata(f"{target}/{METADATA_FILE}", {**metadata, "version": version, "manifest": files})
        log.info("published %s/models/%s/%d", self.url, name, version)
        return version

    def _publish_local(self, name: str, local_dir: Path, files: dict[str, int], metadata: dict) -> int:
        models = Path(self._models(name))
        models.mkdir(parents=True, exist_ok=True)
        staging = models / f".incoming-{uuid.uuid4().hex}"
        shutil.copytree(local_dir, staging, ignore=shutil.ignore_patterns(METADATA_FILE))
        try:
            while True:
                version = max(self._all_version_numbers(name), default=0) + 1
                content = {**metadata, "version": version, "manifest": files}
                (staging / METADATA_FILE).write_text(json.dumps(content, indent=2))
                try:
                    staging.rename(models / str(version))  # atomic; fails if another writer took the number
                except OSError:
                    continue
                log.info("published %s/%d", models, version)
                return version
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _write_metadata(self, path: str, content: dict[str, Any]) -> None:
        with self.fs.open(path, "wb") as handle:
            handle.write(json.dumps(content, indent=2).encode())

    def checkpoints(self, name: str, run_id: str) -> RemoteFolder:
        """The folder holding resumable training state of one run: `<store>/checkpoints/<name>/<run-id>`."""
        return RemoteFolder(
            self.fs, f"{self.root}/checkpoints/{name}/{run_id}", f"{self.url}/checkpoints/{name}/{run_id}"
        )


@dataclass(frozen=True)
class RemoteFolder:
    """A folder in a store that a local folder is mirrored to (checkpoints survive the machine)."""

    fs: fsspec.AbstractFileSystem
    path: str
    url: str

    def files(self) -> dict[str, int]:
        return _files_under(self.fs, self.path)

    def pull(self, local: Path) -> bool:
        """Copy the remote files into LOCAL; False when there is nothing remote."""
        files = self.files()
        for relative in files:
            target = local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(f"{self.path}/{relative}", str(target))
        return bool(files)

    def push(self, local: Path, last: str | None = None) -> None:
        """Mirror LOCAL's files up; LAST (a relative path) goes last so it marks a complete copy."""
        files = sorted(_local_files(local), key=lambda p: (p == last, p))
        for relative in files:
            self.fs.put_file(str(local / relative), f"{self.path}/{relative}")

    def remove(self) -> None:
        if self.files():
            self.fs.rm(self.path, recursive=True)


def fetch_dataset(url: str, cache_dir: Path | None = None) -> Path:
    """A local folder with the dataset at URL: local paths as they are, remote ones through a cache.

    The cache is keyed by URL (under $CLOUD_AI_CACHE or ~/.cache/cloud-ai) and refreshed when the
    remote listing (names and sizes) changes, so a rerun after preemption downloads nothing.
    """
    fs, path = open_url(url)
    if isinstance(fs, LocalFileSystem):
        if not Path(path).is_dir():
            raise UserError(
                f"--data {url!r} is not a folder: expected an image folder with one sub-folder per class"
            )
        return Path(path)
    listing = _files_under(fs, path)
    if not listing:
        raise UserError(
            f"--data {url!r} holds no files: expected an image folder with one sub-folder per class"
        )
    root = cache_dir or Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "cloud-ai"))
    local = root / "datasets" / hashlib.sha256(url.encode()).hexdigest()[:16]
    stamp = local / ".listing.json"
    if stamp.exists() and json.loads(stamp.read_text()) == listing:
        log.info("dataset %s: using the local cache %s", url, local)
        return local / "files"
    shutil.rmtree(local, ignore_errors=True)
    (local / "files").mkdir(parents=True)
    log.info("dataset %s: downloading %d files into %s", url, len(listing), local)
    names = sorted(listing)
    for relative in names:
        (local / "files" / relative).parent.mkdir(parents=True, exist_ok=True)
    fs.get([f"{path}/{n}" for n in names], [str(local / "files" / n) for n in names])
    stamp.write_text(json.dumps(listing))
    return local / "files"
