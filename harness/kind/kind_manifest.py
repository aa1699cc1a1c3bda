"""Print Go string constants of one kind source file: `kind_manifest.py FILE NAME...`, one value per NAME.

Why: kind's node-image builder writes its default StorageClass manifest (and names the local-path images) from
constants in pkg/build/nodeimage/const_storage.go; build_node_image.sh writes the same manifest without running the
builder. Values are "..." or `...` literals, or concatenations of those and of other constants of the file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LITERAL = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|`([^`]*)`|([A-Za-z_]\w*))\s*')


def constants(source: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in re.finditer(r"^(?:const|var)\s+(\w+)\s*=\s*", source, flags=re.MULTILINE):
        position, parts = match.end(), []
        while (part := LITERAL.match(source, position)) is not None:
            quoted, raw, name = part.groups()
            if name is not None and name not in found:
                break  # not a string expression we can evaluate (or a later constant): skip
            parts.append(quoted.encode().decode("unicode_escape") if quoted is not None else
                         raw if raw is not None else found[name])
            position = part.end()
            if not source.startswith("+", position):
                found[match[1]] = "".join(parts)
                break
            position += 1
    return found


def main(argv: list[str]) -> int:
    values = constants(Path(argv[1]).read_text())
    for name in argv[2:]:
        if name not in values:
            print(f"kind_manifest.py: no string constant {name} in {argv[1]}", file=sys.stderr)
            return 1
        print(values[name])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
