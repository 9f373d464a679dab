"""Op-stream conformance (``phantora conformance``): does the simulator run the kernels a real GPU
runs? The streams and keys (:mod:`.streams`), their comparison (:mod:`.compare`, whose doc says how
they are aligned and weighted) and its presentation (:mod:`.present`). Torch-free."""

from phantora.conformance.compare import KINDS, Report, Row, _pair, choose_marker, compare, is_step_op, split
from phantora.conformance.present import TABLE_COLUMNS, describe, summary_line, table_rows
from phantora.conformance.streams import (
    FIELDS,
    ConformanceInputError,
    KeyParts,
    differing_fields,
    family,
    parse_key,
    read_durations,
    read_sim,
    read_trace,
    similarity,
)

__all__ = ["FIELDS", "KINDS", "TABLE_COLUMNS", "ConformanceInputError", "KeyParts", "Report", "Row", "_pair",
           "choose_marker", "compare", "describe", "differing_fields", "family", "is_step_op", "parse_key",
           "read_durations", "read_sim", "read_trace", "similarity", "split", "summary_line", "table_rows"]
