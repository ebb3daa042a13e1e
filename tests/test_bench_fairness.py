"""Smoke: the fairness benchmark imports, reads gunicorn's access log per org and summarises
results timed from their due time (it is run by `make bench`, not here)."""

from benchmarks import fairness


def test_summary_counts_refusals_and_reads_server_times(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("quiet 200 12000\nflood 429 3000\nnot a line\nquiet 200 14000\n")
    server, offset = fairness._server_times(log, 0)
    assert server == {("quiet", 200): [12.0, 14.0], ("flood", 429): [3.0]} and offset == log.stat().st_size
    # [due offset s, late ms, latency from due ms, status, code]
    results = [[0.0, 0.1, 20.0, 200, None], [0.1, 0.2, 30.0, 200, None],
               [0.2, 5.0, 8.0, 429, "upstream_rate_limited"]]
    summary = fairness._summary(results, server, "quiet")
    assert summary["requests"] == 3 and round(summary["success"], 3) == 0.667
    assert summary["p50"] == 25.0 and summary["refused"] == {"upstream_rate_limited": 1}
    assert summary["late_p99"] == 5.0 and summary["server_p50"] == 13.0
    assert summary["tail_due"] == [0.1]  # the slowest served request was due 0.1 s into its block
