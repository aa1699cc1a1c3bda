"""The data volume's identity: a random id written once into `<storage.dataDir>/meta.json`.

Why: a broker that comes back on a new or wiped volume (a replaced PVC, a lost disk) has the same broker id but
none of the records it held — yet the metadata may still list it in-sync, and electing it would lose acknowledged
records. The broker registers this id in the metadata; a different id at start-up means "not the volume the
cluster knew", and the broker leaves every ISR before it opens a replica (Kafka's `meta.properties` directory id
serves the same purpose).

An unreadable identity file is treated like a new volume — the safe reading: the broker re-proves each replica
by fetching, it deletes nothing — and the damaged file is kept aside for inspection.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

from goqueue.storage.sync import write_file_atomically

log = logging.getLogger(__name__)

IDENTITY_FILE = "meta.json"


def load_or_create(data_dir: Path) -> str:
    """This volume's directory id; a new one (written durably) for a volume that has none."""
    path = data_dir / IDENTITY_FILE
    try:
        found = json.loads(path.read_text(encoding="utf-8"))["directoryId"]
        if isinstance(found, str) and found:
            return found
        problem = f"directoryId is {found!r}"
    except FileNotFoundError:
        problem = ""
    except (OSError, ValueError, KeyError, TypeError) as exc:  # ValueError covers bad JSON and bad UTF-8
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        aside = path.with_name(f"{IDENTITY_FILE}.corrupt-{int(time.time())}")
        path.replace(aside)
        log.error("storage.identity_unreadable", extra={"path": str(path), "problem": problem,
                                                        "moved_to": str(aside)})
    directory_id = str(uuid.uuid4())
    write_file_atomically(path, json.dumps({"directoryId": directory_id}).encode())
    return directory_id
