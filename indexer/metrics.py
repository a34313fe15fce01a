"""Prometheus exposition of the pipeline figures (``--metrics-port``), read fresh per scrape."""

from __future__ import annotations

from logpipe.common.broker import Keys


class _Collector:
    def __init__(self, client, keys: Keys):
        self.client, self.keys = client, keys

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from logpipe.indexer import stats

        figures = stats.collect(self.client, self.keys)
        gauges = {
            "logpipe_raw_list_length": ("Records waiting on the raw list", figures["raw_list"]),
            "logpipe_batches_in_flight": ("Claimed batches not yet stored",
                                          figures["batches_pending"]),
            "logpipe_jobs_queued": ("RQ jobs waiting", figures["jobs_queued"]),
            "logpipe_jobs_running": ("RQ jobs running", figures["jobs_running"]),
            "logpipe_workers": ("Live RQ workers", figures["workers"]),
            "logpipe_lines_in_per_second": ("Records claimed per second (10 s window)",
                                            figures["lines_in_per_s"]),
            "logpipe_lines_out_per_second": ("Records finished per second (10 s window)",
                                             figures["lines_out_per_s"]),
            "logpipe_lag_seconds": ("Now minus the oldest waiting record's receive time",
                                    figures["lag_seconds"]),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(name, doc, value=value)
        dead = GaugeMetricFamily("logpipe_dead_letters", "Dead letters by stage", labels=["stage"])
        for stage, n in figures["dead_letters"].items():
            dead.add_metric([stage], n)
        yield dead
        totals = CounterMetricFamily("logpipe_records", "Records by outcome", labels=["outcome"])
        for name, n in figures["totals"].items():
            totals.add_metric([name], n)
        yield totals
        labels = ["shipper", "host"]
        lines = CounterMetricFamily("logpipe_shipper_lines", "Lines shipped", labels=labels)
        sent = CounterMetricFamily("logpipe_shipper_bytes", "Bytes shipped", labels=labels)
        rate = GaugeMetricFamily("logpipe_shipper_lines_per_second", "Lines/s shipped",
                                 labels=labels)
        lag = GaugeMetricFamily("logpipe_shipper_lag_bytes", "Bytes written but not shipped yet",
                                labels=labels)
        dropped = CounterMetricFamily("logpipe_shipper_dropped",
                                      "Syslog UDP datagrams dropped because the spool was full",
                                      labels=labels)
        silent = GaugeMetricFamily("logpipe_shipper_silent_seconds",
                                   "Seconds since the shipper last reported", labels=labels)
        running = GaugeMetricFamily("logpipe_shipper_running",
                                    "1 while the shipper runs, 0 once it finished (ship --once) "
                                    "or was stopped", labels=labels)
        for s in figures["shippers"]:  # validated by stats.shipper_entries: types are right
            key = [s["name"], s["host"]]
            silent.add_metric(key, float(s["age_s"]))
            lines.add_metric(key, float(s["lines"]))
            sent.add_metric(key, float(s["bytes"]))
            rate.add_metric(key, float(s["lines_per_s"]))
            lag.add_metric(key, float(s["lag_bytes"]))
            dropped.add_metric(key, float(s.get("dropped", 0)))
            running.add_metric(key, 1.0 if s["state"] == "running" else 0.0)
        yield from (lines, sent, rate, lag, dropped, silent, running)
        yield GaugeMetricFamily("logpipe_shipper_invalid_entries",
                                "Entries in the shippers' status hash that are not a shipper's "
                                "figures (remove with `logpipe stats --forget NAME`)",
                                value=len(figures["shippers_invalid"]))
        labels = ["source", "host", "path"]
        upto = GaugeMetricFamily("logpipe_ledger_stored_upto",
                                 "Highest sequence of the source stored with every one before it",
                                 labels=labels)
        gaps = GaugeMetricFamily("logpipe_ledger_gaps",
                                 "Records of the source missing above stored_upto (holes)",
                                 labels=labels)
        lost = GaugeMetricFamily("logpipe_ledger_lost_records",
                                 "Records in holes open longer than the loss timeout",
                                 labels=labels)
        llag = GaugeMetricFamily("logpipe_ledger_lag_seconds",
                                 "The newest stored record's time from shipper to store",
                                 labels=labels)
        for e in figures["ledger"]:
            key = [e["source"], e["host"], e["path"]]
            upto.add_metric(key, float(e["stored_upto"]))
            gaps.add_metric(key, float(e["gaps"]))
            lost.add_metric(key, float(e["lost_records"]))
            llag.add_metric(key, float(e["lag"] or 0.0))
        yield from (upto, gaps, lost, llag)
        yield GaugeMetricFamily("logpipe_workers_stale",
                                "RQ worker registrations without a live worker behind them",
                                value=figures["workers_stale"])


def serve_metrics(port: int, client, keys: Keys, host: str = "127.0.0.1") -> None:
    """Start the HTTP exporter in a background thread on ``host``:``port`` (loopback unless told
    otherwise; the exporter has no authentication, so an exposed one is warned about)."""
    from prometheus_client import start_http_server
    from prometheus_client.core import CollectorRegistry

    from logpipe.common.console import emit
    from logpipe.common.listen import warn_if_exposed

    warn_if_exposed(host, f"the metrics endpoint :{port}", False,
                    lambda message: emit("listener_exposed", level="warning", risk=message),
                    risk="anyone who can reach it reads queue sizes, rates, host names and "
                         "shipper paths")
    registry = CollectorRegistry()
    registry.register(_Collector(client, keys))
    start_http_server(port, addr=host, registry=registry)
