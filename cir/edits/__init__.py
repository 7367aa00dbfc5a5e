"""Edit understanding: which objects a modification text adds and which it removes."""

from cir.edits.base import Edit, EditParser
from cir.edits.rules import RuleParser

__all__ = ["Edit", "EditParser", "RuleParser"]
