"""One run pipeline for 1..N simulated ranks: the job (:mod:`.job`), the rank bodies (:mod:`.ranks`),
executing it (:mod:`.execute`) and writing and printing what it measured (:mod:`.pipeline`)."""

from phantora.run.execute import Outcome, execute
from phantora.run.job import RunJob, prewarm
from phantora.run.pipeline import simulate
from phantora.run.ranks import interposed, plain

__all__ = ["Outcome", "RunJob", "execute", "interposed", "plain", "prewarm", "simulate"]
