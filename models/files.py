"""Files of tensors with JSON metadata: safetensors, the JSON in its header, a format tag.

Model checkpoints and the metrics' classifier are both stored this way, so one reader and one
writer serve both: writes are atomic (a crash leaves the old file or the new one, never half a
file), reads never unpickle, and every problem is raised as the caller's own error type with a
message that names the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes


@dataclass(frozen=True)
class TaggedFormat:
    """One kind of file: which header key holds its JSON metadata and which format tag it carries."""

    kind: str  # what messages call it: "checkpoint", "classifier"
    label: str  # whose metadata it is, for messages: "InfoGAN"
    key: str  # the safetensors header key holding the JSON metadata
    tag: str  # the metadata's "format" value, versioned
    error: type[Exception]  # raised for every unusable file
    missing: str  # the message for a missing file: what it is and, where useful, how to make one

    def write(self, path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
        """Write `tensors` and `meta` (the format tag added) atomically."""
        path = Path(path)
        header = {self.key: json.dumps({**meta, "format": self.tag})}
        write_atomic(path, safetensors_bytes(tensors, metadata=header))
        return path

    def read(
        self, path: str | os.PathLike[str], *, with_tensors: bool = True, data: bytes | None = None
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(metadata, tensors); tensors stay unread (empty) with `with_tensors=False`. With `data`,
        the file's bytes as the caller read them, those are decoded and `path` only names them: a
        caller that hashes the bytes then knows the hash is of what it decoded, even when the file
        is replaced meanwhile."""
        path = Path(path)
        if data is None and not path.is_file():
            raise self.error(f"{path}: {self.missing}")
        try:
            if data is not None:
                header, tensors = _parse(data)
            else:
                with safe_open(str(path), framework="pt") as handle:
                    header = handle.metadata() or {}
                    names = handle.keys() if with_tensors else []  # a safe_open handle is not iterable
                    tensors = {name: handle.get_tensor(name) for name in names}
        except (SafetensorError, OSError, ValueError) as error:
            raise self.error(f"{path}: not a readable safetensors file (truncated or corrupt?): {error}") from error
        if self.key not in header:
            raise self.error(f"{path}: safetensors file without {self.label} metadata (key {self.key!r})")
        try:
            meta = json.loads(header[self.key])
        except json.JSONDecodeError as error:
            raise self.error(f"{path}: metadata is not valid JSON: {error}") from error
        if not isinstance(meta, dict) or meta.get("format") != self.tag:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise self.error(f"{path}: unsupported {self.kind} format {found!r}, expected {self.tag!r}")
        return meta, tensors


def _parse(data: bytes) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A safetensors file's header metadata and tensors, from its bytes: an 8-byte little-endian
    header length, the JSON header (metadata under "__metadata__"), then the tensor data."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header.get("__metadata__") or {}, safetensors_load(data)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the file from a service running as another user
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
