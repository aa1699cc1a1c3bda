"""`goqueue-admin`: broker health, metrics, storage and cluster read-outs for on-call engineers."""

from __future__ import annotations

import sys

import typer

from goqueue.cli.render import human_bytes, print_fields, print_json, print_table
from goqueue.cli.runtime import CliContext, Output, OutputOption, ServerOption, context, run

app = typer.Typer(help="GoQueue administration: health, metrics, storage, cluster.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
storage_app = typer.Typer(help="Storage read-outs.", no_args_is_help=True)
app.add_typer(storage_app, name="storage")


@app.callback()
def _root(ctx: typer.Context, server: str = ServerOption, output: Output = OutputOption) -> None:
    ctx.obj = CliContext(server=server, output=output)


@app.command("health")
def health(ctx: typer.Context) -> None:
    """Is this broker healthy? Exits 1 when it is not."""
    cli = context(ctx)
    with cli.client() as client:
        status = client.health()
    if cli.json:
        print_json(status)
    else:
        print_fields({"Status": status.status, "Broker": status.broker_id, "Version": status.version,
                      "Uptime": f"{status.uptime_s:.0f}s", **{k.capitalize(): v for k, v in status.checks.items()}})
    if status.status != "healthy":
        raise typer.Exit(1)


@app.command("metrics")
def metrics(ctx: typer.Context) -> None:
    """Print the broker's Prometheus metrics (pipe through grep, as the runbook does)."""
    with context(ctx).client() as client:
        sys.stdout.write(client.metrics_text())


@storage_app.command("stats")
def storage_stats(ctx: typer.Context) -> None:
    """Disk usage of the data volume, per topic and per partition."""
    cli = context(ctx)
    with cli.client() as client:
        stats = client.storage_stats()
    if cli.json:
        print_json(stats)
        return
    print_fields({"Data dir": stats.data_dir,
                  "Volume": f"{human_bytes(stats.volume_used_bytes)} used of {human_bytes(stats.volume_total_bytes)}"
                            f" ({stats.volume_used_percent:.1f}%), {human_bytes(stats.volume_free_bytes)} free",
                  "Logs": human_bytes(stats.log_bytes)})
    print()
    print_table(["TOPIC", "PARTITION", "SIZE", "SEGMENTS", "START", "END"],
                [[p.topic, p.partition, human_bytes(p.size_bytes), p.segments, p.start_offset, p.end_offset]
                 for p in stats.partitions])


def main() -> None:
    sys.exit(run(app, "goqueue-admin"))



if __name__ == "__main__":
    main()
