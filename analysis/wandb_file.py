"""Our own reader of a W&B offline transaction log (`run-<id>.wandb`), used when W&B's reader
is not available (see `adadim.analysis.wandb_leet`).

The file is a LevelDB-style log (format version 0, written by wandb 0.30 and 0.31, and long
before): a 7-byte header (``:W&B``, magic 0xBEE1, version byte 0), then 32 KiB blocks of chunks.
Each chunk has a 7-byte header: CRC-32 (4 bytes, little-endian, seeded with the chunk type),
payload length (2 bytes), and type (1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST). A record's payload is a
serialized ``wandb_internal_pb2.Record`` protobuf, decoded with the installed wandb's own
protobuf classes. wandb removed its Python reader of this log in 0.30.

Keys follow W&B's convention: a value logged as a nested dict ({"a": {"b": 1}}) is stored
under its key path and read back as ``"a.b"``, the name W&B's API and `wandb leet` show.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

BLOCK_SIZE = 32 * 1024
CHUNK_HEADER = 7
MAGIC = b":W&B"
MAGIC_NUMBER = 0xBEE1
FORMAT_VERSION = 0
FILE_HEADER = struct.pack("<4sHB", MAGIC, MAGIC_NUMBER, FORMAT_VERSION)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class WandbFileError(ValueError):
    """A `.wandb` file that cannot be read."""


class CorruptWandbFile(WandbFileError):
    pass


class UnsupportedWandbFile(WandbFileError):
    """A W&B transaction log in a format version this parser does not know."""


def check_header(path: str | Path, head: bytes) -> None:
    """Raise a one-line error unless ``head`` starts a W&B transaction log of format version 0."""
    if len(head) < len(FILE_HEADER):
        raise CorruptWandbFile(f"{path}: not a W&B transaction log (file shorter than its header)")
    magic, number, version = struct.unpack_from("<4sHB", head)
    if magic != MAGIC or number != MAGIC_NUMBER:
        raise CorruptWandbFile(f"{path}: not a W&B transaction log (bad header)")
    if version != FORMAT_VERSION:
        raise UnsupportedWandbFile(
            f"{path}: W&B transaction log format version {version}; this parser reads version "
            f"{FORMAT_VERSION} only. Install a wandb that can read it (`wandb leet inspect --json` is then used)"
        )


def read_payloads(path: str | Path) -> Iterator[bytes]:
    """Every complete record payload in file order. A torn final record (a crash mid-write)
    ends the stream quietly; corruption before the end raises CorruptWandbFile."""
    data = Path(path).read_bytes()
    check_header(path, data)
    pos, pending = len(FILE_HEADER), None
    while pos + CHUNK_HEADER <= len(data):
        room = BLOCK_SIZE - pos % BLOCK_SIZE
        if room < CHUNK_HEADER:  # block trailer padding
            pos += room
            continue
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if crc == 0 and length == 0 and kind == 0:  # zero fill at the end of a block
            pos += room
            continue
        start, end = pos + CHUNK_HEADER, pos + CHUNK_HEADER + length
        if end > len(data):
            return  # torn tail
        payload = data[start:end]
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            if end >= len(data) - CHUNK_HEADER:
                return
            raise CorruptWandbFile(f"{path}: checksum mismatch at byte {pos}")
        pos = end
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = bytearray(payload)
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending.extend(payload)
            if kind == LAST:
                yield bytes(pending)
                pending = None
        else:
            raise CorruptWandbFile(f"{path}: unexpected chunk type {kind} at byte {pos}")


def read_records(path: str | Path):
    from wandb.proto import wandb_internal_pb2 as pb

    for payload in read_payloads(path):
        record = pb.Record()  # type: ignore[attr-defined]  # generated protobuf class
        record.ParseFromString(payload)
        yield record


def _item_key(item) -> str:
    return item.key if item.key else ".".join(item.nested_key)


def _decode(item):
    return json.loads(item.value_json)


def empty_run() -> dict:
    return {"id": None, "config": {}, "history": [], "summary": {}, "exit_code": None}


def read_run(path: str | Path) -> dict:
    """The run's id, config, history rows (one dict per logged step, keys as logged, plus
    W&B's ``_step``), summary and exit code, from one offline `.wandb` file."""
    run = empty_run()
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["id"] = record.run.run_id
            for item in record.run.config.update:
                run["config"][_item_key(item)] = _decode(item)
        elif kind == "config":
            for item in record.config.update:
                run["config"][_item_key(item)] = _decode(item)
        elif kind == "history":
            row = {_item_key(item): _decode(item) for item in record.history.item}
            if record.history.HasField("step"):
                row.setdefault("_step", record.history.step.num)
            run["history"].append(row)
        elif kind == "summary":
            for item in record.summary.update:
                run["summary"][_item_key(item)] = _decode(item)
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run
