"""The sandbox that fills a policy's placeholders: Jinja that can neither build a huge value nor run for long.

Jinja's sandbox keeps policy text from reaching Python's internals and limits `range()`, but `{{ 'a' * 10**8 }}`,
`'a'.ljust(10**8)`, `9 ** 9 ** 9` or a loop in a loop still take minutes and gigabytes. Here every operation that
can make something larger than its operands (`*`, `**`, `+`, `%`, `~`, the growing str methods and filters) has
the size of its result estimated before it runs; every value built and every loop turn is counted, and so is
what a section puts out. Past limits.placeholder_chars the placeholder fails with PlaceholderLimit, naming it.
Statements are restricted to `if`, `for`, `set` and `with`: macros, call and filter blocks, `{% set %}` blocks,
includes and imports are refused, so all output passes the one counted stream.
"""

from __future__ import annotations

import re
import types
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from functools import lru_cache, wraps
from typing import Any

from jinja2 import StrictUndefined, Template, nodes, pass_context, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

# All the values one section's placeholders build and all their loop turns together: this many times the limit.
WORK_FACTOR = 10
# About 4,300 decimal digits, where Python itself stops printing an integer.
INT_BITS = 14_000
# Filters that policy text has no use for and that cost more than their input: random text, HTML, regex scans.
DROPPED_FILTERS = frozenset({"random", "urlize", "xmlattr", "striptags"})
KEPT_GLOBALS = frozenset({"range", "dict"})
# Attributes whose result size depends on a number or a table (widths in a format, a translation table).
REFUSED_ATTRIBUTES = {str: {"format", "format_map", "translate", "expandtabs"}, bytes: {"translate", "expandtabs"},
                      int: {"to_bytes"}}
REFUSED_STATEMENTS = {nodes.Macro: "macro", nodes.CallBlock: "call", nodes.FilterBlock: "filter",
                      nodes.AssignBlock: "set … %}…{% endset", nodes.Block: "block", nodes.Extends: "extends",
                      nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from … import",
                      nodes.EvalContextModifier: "autoescape", nodes.ScopedEvalContextModifier: "autoescape",
                      nodes.Scope: "scope", nodes.OverlayScope: "overlay", nodes.ExprStmt: "do",
                      nodes.NSRef: "set namespace"}
# A printf-style conversion: its width and precision say how long its output is.
PERCENT_SPEC = re.compile(r"%(?:\([^()]*+\))?[#0 +-]*+([0-9]++|\*)?(?:\.([0-9]++|\*))?")
TURNS_FILTER = "_bounded_turns"


class PlaceholderLimit(SecurityError):
    """Placeholders would build a value larger, or take more steps, than limits.placeholder_chars allows."""


class PlaceholderRefused(SecurityError):
    """Policy text uses a template statement that placeholders do not need."""


class _Budget:
    """What one section's placeholders may still do."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.work = 0

    def value(self, size: int, what: str) -> None:
        """Count a value of `size` (a lower bound: weight() stops counting past the limit), refused past the limit."""
        if size > self.limit:
            raise PlaceholderLimit(f"{what} of {size:,} characters or more; the limit is {self.limit:,} (limits.placeholder_chars)")
        self.spend(size)

    def spend(self, steps: int) -> None:
        self.work += steps
        if self.work > WORK_FACTOR * self.limit:
            raise PlaceholderLimit(f"more than {WORK_FACTOR * self.limit:,} steps (characters built and loop turns); "
                                   f"at most {WORK_FACTOR} × limits.placeholder_chars")


_BUDGET: ContextVar[_Budget] = ContextVar("placeholder_budget")


def weight(value: Any, cap: int) -> int:
    """About how many characters `value` shows as; counting stops once past `cap`."""
    total, pending = 0, [value]
    while pending and total <= cap:
        item = pending.pop()
        if isinstance(item, (str, bytes, bytearray)):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, Mapping):
            total += 2 * len(item) + 2
            if total <= cap:
                pending.extend(item.keys())
                pending.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)):
            total += len(item) + 2
            if total <= cap:
                pending.extend(item)
        elif isinstance(item, range):
            total += len(item)  # short as a repr, but as long as its items once listed or joined
        else:
            total += 8
    return total


def _int_result(bits: int) -> None:
    if bits > INT_BITS:
        raise PlaceholderLimit(f"an integer of more than {int(INT_BITS * 0.30103):,} digits")


def _percent_size(template: str | bytes, values: Any, limit: int) -> int:
    """The most `template % values` can produce: its text, its values, and every width and precision it asks for."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    size = len(text) + weight(values, limit)
    for match in PERCENT_SPEC.finditer(text):
        for number in match.groups():
            if number == "*":
                raise PlaceholderLimit("a '*' width in a % format (give the width as a number)")
            if number:
                size += int(number) if len(number) < 10 else 10 * limit
    return size


def _binop_size(operator: str, left: Any, right: Any, limit: int) -> int | None:
    """The size of `left <operator> right` before it is computed; None where it cannot outgrow its operands."""
    sequences = (str, bytes, list, tuple)
    if operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            _int_result(left.bit_length() + right.bit_length())
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, sequences) and isinstance(times, int):
                return weight(sequence, limit) * max(times, 0)
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        _int_result(left.bit_length() * right)
    elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        return weight(left, limit) + weight(right, limit)
    elif operator == "%" and isinstance(left, (str, bytes)):
        return _percent_size(left, right, limit)
    return None


def _replace_size(text: Any, old: Any, new: Any, count: Any) -> int | None:
    if not (isinstance(text, (str, bytes)) and isinstance(old, type(text)) and isinstance(new, type(text))):
        return None
    found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _collected(items: Iterable[Any], separator: int, budget: _Budget, what: str) -> list[Any]:
    """`items` as a list, refused as soon as joining them would make more than the limit."""
    collected, size = [], 0
    for item in items:
        size += weight(item, budget.limit) + separator
        if size > budget.limit:
            budget.value(size, what)
        collected.append(item)
    budget.spend(size)
    return collected


def _built(result: Any, budget: _Budget, what: str) -> Any:
    """Count a value an operation built; a lazy sequence (map, select, batch) is counted item by item."""
    if isinstance(result, Iterator):
        return _counted(result, budget, what)
    budget.value(weight(result, budget.limit), what)
    return result


def _counted(items: Iterator[Any], budget: _Budget, what: str) -> Iterator[Any]:
    for item in items:
        budget.value(weight(item, budget.limit), what)
        yield item


def _filter_size(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], budget: _Budget) -> int | None:
    """The size of a filter's result, for the filters that can make more than they are given."""
    def arg(position: int, key: str, default: Any) -> Any:
        return args[position] if len(args) > position else kwargs.get(key, default)

    text = value if isinstance(value, str) else None
    if name == "center" and text is not None and isinstance(width := arg(0, "width", 80), int):
        return max(len(text), width)
    if name == "indent" and text is not None:
        width = arg(0, "width", 4)
        return len(text) + (text.count("\n") + 1) * (len(width) if isinstance(width, str) else width if isinstance(width, int) else 0)
    if name == "wordwrap" and text is not None:
        wrap = arg(2, "wrapstring", None)
        return len(text) * (1 + (len(wrap) if isinstance(wrap, str) else 1))
    if name == "replace":
        return _replace_size(value, arg(0, "old", None), arg(1, "new", None), arg(2, "count", None))
    if name == "format" and text is not None:
        return _percent_size(text, (args, kwargs), budget.limit)
    if name in ("batch", "slice"):
        parts = arg(0, "linecount" if name == "batch" else "slices", 1)
        return parts if isinstance(parts, int) else None
    if name == "truncate" and text is not None:
        end = arg(2, "end", "...")
        return len(text) + (len(end) if isinstance(end, str) else 0)
    return None


def _bounded_filter(name: str, function: Any) -> Any:
    """`function` with its result size checked before (where it can grow) and counted after."""
    pass_arg = getattr(getattr(function, "jinja_pass_arg", None), "name", None)

    @pass_context  # also keeps Jinja from running the filter at compile time, outside any budget
    @wraps(function)
    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        what = f"the {name} filter would make a value"
        if name == "join":
            separator = args[0] if args else kwargs.get("d", "")
            value = _collected(value, len(separator) if isinstance(separator, str) else 0, budget, what)
        else:
            size = _filter_size(name, value, args, kwargs, budget)
            if size is not None:
                budget.value(size, what)
        lead = {"context": (context,), "eval_context": (context.eval_ctx,), "environment": (context.environment,)}.get(pass_arg or "", ())
        return _built(function(*lead, value, *args, **kwargs), budget, what)

    return bounded


@pass_context
def _bounded_turns(context: Context, items: Any) -> Iterator[Any]:
    """Wrapped around every `{% for %}`'s sequence: each turn counts, so loops in loops end."""
    budget = _BUDGET.get()
    for item in items:
        budget.spend(1)
        yield item


@pass_eval_context
def _finalize(eval_context: EvalContext, value: Any) -> Any:
    """Every `{{ … }}` value, before it becomes text (a list of a thousand long strings is short, its text is not)."""
    budget = _BUDGET.get()
    budget.value(weight(value, budget.limit), "a placeholder's value")
    return value


class _CodeGenerator(CodeGenerator):
    """Jinja's compiler, with `~` joining through the sandbox so that the joined size is checked first."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


class PolicySandbox(ImmutableSandboxedEnvironment):
    """The environment of policy text; render through fill(), which gives each section its budget."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    code_generator_class = _CodeGenerator

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize)
        for name in set(self.globals) - KEPT_GLOBALS:
            del self.globals[name]
        self.filters = {name: _bounded_filter(name, function) for name, function in self.filters.items() if name not in DROPPED_FILTERS}
        self.filters[TURNS_FILTER] = _bounded_turns

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        for kind, refused in REFUSED_ATTRIBUTES.items():
            if isinstance(obj, kind) and attr in refused:
                return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        # The base hands out a sandboxed str.format here, before is_safe_attribute is asked; format widths
        # ('{:>100000000}') build any size, and `~` or `%` say the same in policy text.
        return None

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _BUDGET.get()
        size = _binop_size(operator, left, right, budget.limit)
        what = f"'{operator}' would make a value"
        if size is not None:
            budget.value(size, what)
        return _built(self.binop_table[operator](left, right), budget, what)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (the base's names)
        budget = _BUDGET.get()
        owner, name = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
        what = f"{name}() would make a value"
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(owner, (str, bytes)):
            if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
                budget.value(max(len(owner), args[0]), what)
            elif name == "replace" and len(args) >= 2:
                size = _replace_size(owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count"))
                if size is not None:
                    budget.value(size, what)
            elif name == "join" and len(args) == 1:
                args = (_collected(args[0], len(owner), budget, what),)
        return _built(super().call(__context, __obj, *args, **kwargs), budget, what)

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        budget = _BUDGET.get()
        budget.value(sum(weight(part, budget.limit) for part in parts), "'~' would make a text")
        return "".join([str(part) for part in parts])


@lru_cache(maxsize=1)
def sandbox() -> PolicySandbox:
    return PolicySandbox()


def _vetted(tree: nodes.Template) -> nodes.Template:
    """Refuse the statements policy text has no use for; make every loop count its turns."""
    for node in tree.find_all(nodes.Node):
        for kind, tag in REFUSED_STATEMENTS.items():
            if isinstance(node, kind):
                raise PlaceholderRefused(f"{{% {tag} %}} cannot be used in policy text "
                                         "(placeholders are values {{ … }}, conditions {% if %} and loops {% for %})")
        if isinstance(node, nodes.For):
            if node.recursive:
                raise PlaceholderRefused("a recursive {% for %} cannot be used in policy text")
            node.iter = nodes.Filter(node.iter, TURNS_FILTER, [], [], None, None, lineno=node.iter.lineno)
    tree.set_environment(sandbox())
    return tree


@lru_cache(maxsize=2048)
def _compiled(text: str) -> Template:
    # Compiled once per distinct text: check fills every section for every site and language.
    return sandbox().from_string(_vetted(sandbox().parse(text)))


def fill(text: str, context: Mapping[str, Any], limit: int) -> str:
    """`text` with its placeholders filled from `context`. Raises whatever the text's expressions raise, and
    PlaceholderLimit when they would build a value of more than `limit` characters, take more than
    WORK_FACTOR × `limit` steps, or make the text more than `limit` characters longer."""
    template = _compiled(text)
    token = _BUDGET.set(_Budget(limit))
    try:
        parts, size, most = [], 0, len(text) + limit
        for part in template.generate(**context):
            size += len(part)
            if size > most:
                raise PlaceholderLimit(f"the section's placeholders make it more than {limit:,} characters longer (limits.placeholder_chars)")
            parts.append(part)
        return "".join(parts)
    finally:
        _BUDGET.reset(token)
