"""What-if studies (``phantora sweep``): expand a study file into scenario points (:mod:`.study`, schema
in :mod:`.schema`), run each as its own ``phantora`` command (:mod:`.kinds`, :mod:`.executors`) and
gather one table in the sweep's folder (:mod:`.store`)."""

from phantora.sweep.executors import PointOutcome, local_executor, ray_executor, run_point, run_study
from phantora.sweep.kinds import POINT_KINDS, PointKind
from phantora.sweep.schema import StudyFile, SweepError
from phantora.sweep.store import load_result, materialise, table_rows
from phantora.sweep.study import Point, Study, load_study, point_id

__all__ = ["POINT_KINDS", "Point", "PointKind", "PointOutcome", "Study", "StudyFile", "SweepError", "load_result",
           "load_study", "local_executor", "materialise", "point_id", "ray_executor", "run_point", "run_study",
           "table_rows"]
