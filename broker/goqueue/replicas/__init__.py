"""The partition replicas this broker holds: each a log plus its role (`partition`), the table of them following
the metadata with the local write path (`manager`), fetching from leaders elsewhere (`fetcher`), and keeping the
in-sync sets of partitions led here (`isr_upkeep`)."""
