"""Edit understanding: which objects a modification text adds and which it removes.

    from cir.edits import parse, get_parser
    parse("take out the jacket and add a laptop")          # Edit(add=("laptop",), remove=("jacket",))
    get_parser("tagger").parse_many(["no more cups", "swap the cat for a dog"])
"""

from cir.edits.base import Edit, EditParser
from cir.edits.parsers import PARSER_NAMES, get_parser, parse
from cir.edits.rules import RuleParser

__all__ = ["Edit", "EditParser", "RuleParser", "PARSER_NAMES", "get_parser", "parse"]
