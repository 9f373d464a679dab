"""What a run leaves behind: its figures (:mod:`.figures`), its files (:mod:`.files`) and the
directory that holds them (:mod:`.directory`). Everything takes ``{rank: RankResult}``, one rank or many."""

from phantora.results.directory import LOCK_FILE, PHANTORA_FILES, ResultsDir, ResultsDirError, load_summary
from phantora.results.figures import (
    build_summary,
    exact_coverage_pct,
    failure_summary,
    gpu_busy_pct,
    mean_excluding_first,
)
from phantora.results.files import (
    OPS_COLUMNS,
    atomic_path,
    ops_frame,
    trace_events,
    write_json_atomic,
    write_missing_signatures,
    write_op_trace,
    write_results,
    write_tables,
)

__all__ = ["LOCK_FILE", "OPS_COLUMNS", "PHANTORA_FILES", "ResultsDir", "ResultsDirError", "atomic_path",
           "build_summary", "exact_coverage_pct", "failure_summary", "gpu_busy_pct", "load_summary",
           "mean_excluding_first", "ops_frame", "trace_events", "write_json_atomic", "write_missing_signatures",
           "write_op_trace", "write_results", "write_tables"]
