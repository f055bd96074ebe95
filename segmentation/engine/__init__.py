"""The segmentation engine: validate, compile (SQL), evaluate (Python), summarise, classify.

Pure: it reads the attribute registry and segment keys when asked to, and never writes.
"""

from .compiler import compile_definition
from .dependencies import definition_dependencies
from .evaluator import CustomerData, EventData, customer_data_from_db, evaluate, explain
from .schema import Problem, validate_definition
from .summary import summarize

__all__ = [
    "CustomerData",
    "EventData",
    "Problem",
    "compile_definition",
    "customer_data_from_db",
    "definition_dependencies",
    "evaluate",
    "explain",
    "summarize",
    "validate_definition",
]
