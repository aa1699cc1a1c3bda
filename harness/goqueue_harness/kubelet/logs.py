"""Container logs as files: ``kubectl logs`` for a node with no kubelet API.

Why: ``kubectl logs`` asks the node's kubelet over HTTPS, which this harness
does not serve. Each container's stdout+stderr goes to
``<state>/kubelet/logs/<ns>_<pod>_<uid>/<container>/<restartCount>.log``;
tests read them through :func:`container_log`.
"""

from __future__ import annotations

from pathlib import Path


def container_log_files(kubelet_dir: Path, namespace: str, pod: str, container: str) -> list[Path]:
    """All log files of a container across pod incarnations and restarts, oldest first."""
    files = [f for d in (kubelet_dir / "logs").glob(f"{namespace}_{pod}_*") for f in (d / container).glob("*.log")]
    return sorted(files, key=lambda f: f.stat().st_mtime)


def container_log(kubelet_dir: Path, namespace: str, pod: str, container: str, *, previous: bool = False) -> str:
    """The current (or, with ``previous``, the one before) log of a container; "" if none."""
    files = container_log_files(kubelet_dir, namespace, pod, container)
    index = -2 if previous else -1
    if len(files) < -index:
        return ""
    return files[index].read_text(errors="replace")
