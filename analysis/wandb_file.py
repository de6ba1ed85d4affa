"""Read a W&B offline transaction log (`run-<id>.wandb`) without a server.

The file is a LevelDB-style log (verified against wandb 0.31): a 7-byte header (``:W&B``,
magic 0xBEE1, version 0), then 32 KiB blocks of chunks. Each chunk has a 7-byte header:
CRC-32 (4 bytes, little-endian, seeded with the chunk type), payload length (2 bytes), and
type (1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST). A record's payload is a serialized
``wandb_internal_pb2.Record`` protobuf. wandb removed its own Python reader in 0.30.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

BLOCK_SIZE = 32 * 1024
CHUNK_HEADER = 7
FILE_HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class CorruptWandbFile(ValueError):
    pass


def read_payloads(path: str | Path) -> Iterator[bytes]:
    """Every complete record payload in file order. A torn final record (a crash mid-write)
    ends the stream quietly; corruption before the end raises CorruptWandbFile."""
    data = Path(path).read_bytes()
    if data[: len(FILE_HEADER)] != FILE_HEADER:
        raise CorruptWandbFile(f"{path}: not a W&B transaction log (bad header)")
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
        record = pb.Record()
        record.ParseFromString(payload)
        yield record


def _item_key(item) -> str:
    return item.key if item.key else "/".join(item.nested_key)


def _decode(item):
    return json.loads(item.value_json)


def read_run(path: str | Path) -> dict:
    """The run's id, config, history rows (one dict per logged step, keys as logged),
    summary and exit code, from one offline `.wandb` file."""
    run = {"id": None, "config": {}, "history": [], "summary": {}, "exit_code": None}
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
    run["config"] = {
        k: v.get("value", v) if isinstance(v, dict) and "value" in v else v for k, v in run["config"].items()
    }
    return run
