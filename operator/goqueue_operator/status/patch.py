"""What a JSON merge patch (RFC 7386) does to an object: how a handler keeps its copy of a status in step with the
status patches it sends (the API server merges nested objects; a null deletes a key). Pure."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def merge_patch(target: JSON, patch: JSON) -> JSON:
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged
