"""A Jinja2 sandbox with bounded time and memory, for templates from agent documents.

Agent documents are untrusted: anyone with an API key can ``POST /v1/agents``. Jinja's own
:class:`~jinja2.sandbox.SandboxedEnvironment` keeps a template away from Python internals but
not from the CPU or the heap: ``{{ (9**(9**8)) % 7 }}`` blocked the event loop for 91 s, once
in Jinja's compiler (it folds constant expressions while compiling) and again on every run.

This environment adds, on top of the (immutable) sandbox:

* **Operators** (``+ - * / // % **``) are intercepted, which also stops Jinja from folding
  them at compile time: ``**`` and int ``*`` must stay under :data:`MAX_INT_BITS`; string and
  list repetition or concatenation under :data:`MAX_OUTPUT_CHARS` (and :data:`MAX_ITEMS`);
  ``%`` formatting may not ask for widths over :data:`MAX_SIZE_ARGUMENT`.
* **Filters** are all wrapped: integer arguments over :data:`MAX_SIZE_ARGUMENT` are refused,
  lazy inputs are drained with a limit, the few filters whose result can be much larger than
  their input (indent, wordwrap, replace, join, format, tojson, pprint) are estimated first, and
  every result is measured. Wrapped filters take the context, so none is run at compile time.
* **Calls** (methods, macros, ``range``, ``dict``...) go through :meth:`BoundedEnvironment.call`,
  which applies the same rules to ``str`` methods (``ljust``, ``replace``, ``join``,
  ``expandtabs``...) and to ``str.format``/``format_map``.
* **A work budget per render**: the compiled template is instrumented (every ``for`` iterates
  through a counting iterator; ``~`` and list/tuple/dict literals are measured) and every loop
  step, call, filter, operator and output counts against :data:`MAX_RENDER_STEPS` and a
  :data:`RENDER_BUDGET_SECONDS` wall-clock deadline. The output is streamed and stops past
  :data:`MAX_OUTPUT_CHARS`.

Everything over a limit raises :class:`TemplateLimitError`, whose message names the limit.
A single step can still overrun the deadline by the cost of one bounded operation (at most a
few hundred kilobytes of string work), which is why sizes are bounded as well as time.
"""

from __future__ import annotations

import math
import re
import string
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from jinja2 import Template, TemplateSyntaxError, nodes, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from astromesh.prompts.limits import TemplateLimitError

RENDER_BUDGET_SECONDS: Final = 0.25
"""Wall-clock time one render may take. A real prompt renders in well under a millisecond;
a quarter of a second is long enough for any honest template and short enough that the event
loop (which renders inline) stays responsive to /v1/health and other requests."""

MAX_RENDER_STEPS: Final = 200_000
"""Loop iterations, calls, filters, operators and outputs one render may perform. The deadline
is the real bound; this one makes a runaway template fail the same way on a fast machine."""

MAX_OUTPUT_CHARS: Final = 262_144
"""Characters of rendered output, and of any single value a template builds (256 KiB). A
system prompt larger than this cannot fit a model's context window anyway."""

MAX_PRODUCED_CHARS: Final = 4 * MAX_OUTPUT_CHARS
"""Characters one render may print in total, including text captured by ``{% set %}``,
``{% filter %}`` and macro bodies that never reaches the output (1 MiB)."""

MAX_ITEMS: Final = 65_536
"""Items in any list, tuple or dict a template builds or a filter returns."""

MAX_RANGE_ITEMS: Final = 10_000
"""Items ``range()`` may produce (Jinja's own sandbox allows 100,000)."""

MAX_SIZE_ARGUMENT: Final = 65_536
"""The largest integer a filter or ``str`` method accepts as a width, count, length or tab
size, and the largest field width or precision in ``%`` and ``str.format`` formatting."""

MAX_INT_BITS: Final = 4096
"""Bits of an integer ``*`` or ``**`` may produce (about 1,200 decimal digits)."""

MAX_NESTING: Final = 64
"""How deeply a value a template builds or prints may nest lists and dicts."""

MAX_TEMPLATE_CHARS: Final = 65_536
"""Characters of template source compiled at all; document limits are stricter per field."""

DOCUMENT_BUDGET_SECONDS: Final = 0.5
"""Wall-clock time the trial renders of one document's templates may take together, so a
document with a hundred templates each just under :data:`RENDER_BUDGET_SECONDS` cannot hold
the event loop for half a minute at registration. Only the renders count: the validation
between them (parsing, compiling, other fields), and whatever else the process does
meanwhile on a loaded machine, is not the templates' doing."""

# -- the per-render budget ---------------------------------------------------------------------


@dataclass
class _Budget:
    """What one render has used so far; ``late`` is the message for passing ``deadline``."""

    deadline: float
    late: str
    steps: int = 0
    produced: int = 0

    def charge(self) -> None:
        self.steps += 1
        if self.steps > MAX_RENDER_STEPS:
            raise TemplateLimitError(f"template exceeds the {MAX_RENDER_STEPS} step render budget")
        if time.perf_counter() > self.deadline:
            raise TemplateLimitError(self.late)

    def produce(self, chars: int) -> None:
        self.produced += chars
        if self.produced > MAX_PRODUCED_CHARS:
            raise TemplateLimitError(
                f"template prints over {MAX_PRODUCED_CHARS} characters in total"
            )


_ACTIVE: ContextVar[_Budget | None] = ContextVar("astromesh_template_budget", default=None)


@dataclass
class _SharedBudget:
    """Render time the templates of one document may still spend, in seconds."""

    left: float


_SHARED: ContextVar[_SharedBudget | None] = ContextVar(
    "astromesh_template_shared_budget", default=None
)


@contextmanager
def shared_budget(seconds: float = DOCUMENT_BUDGET_SECONDS) -> Iterator[None]:
    """Renders inside share ``seconds`` of render time (besides each their own budget).

    The loader validates each document inside one, so the trial renders of all its templates
    together stay within :data:`DOCUMENT_BUDGET_SECONDS`. Time between the renders is not
    counted (see there).
    """
    token = _SHARED.set(_SharedBudget(seconds))
    try:
        yield
    finally:
        _SHARED.reset(token)


def _charge() -> _Budget:
    """Count one step of the active render.

    Rendering only happens through :func:`render_bounded`; a template evaluated any other way
    (there is none) is refused rather than run without a budget.
    """
    budget = _ACTIVE.get()
    if budget is None:
        raise TemplateLimitError("template evaluated outside a render budget")
    budget.charge()
    return budget


# -- measuring values --------------------------------------------------------------------------


def _text_size(value: Any, limit: int = MAX_OUTPUT_CHARS, *, indent: int = 0) -> int:
    """About how many characters ``str(value)`` (or its JSON with ``indent``) would have.

    Shared lists and dicts are measured once per walk (a value that holds one list twice
    costs one walk of it, however large its text), counting stops once past ``limit``, and a
    value that contains itself or nests deeper than :data:`MAX_NESTING` answers ``limit + 1``.
    """
    memo: dict[tuple[int, int], int] = {}
    alive: list[Any] = []  # copies made below stay alive, so their ids are not reused
    too_large = limit + 1

    def size(item: Any, depth: int) -> int:
        if isinstance(item, str | bytes):
            return len(item) + 2
        if isinstance(item, bool) or item is None:
            return 5
        if isinstance(item, int):
            return item.bit_length() * 31 // 100 + 2
        if isinstance(item, float):
            return 24
        if isinstance(item, Namespace):
            item = item._Namespace__attrs  # type: ignore[attr-defined]
        if isinstance(item, type({}.keys()) | type({}.values()) | type({}.items())):
            item = list(item)
            alive.append(item)
        if isinstance(item, Mapping):
            children: Iterable[Any] = (part for pair in item.items() for part in pair)
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        else:
            return 32  # ranges, loops, macros, undefined: short reprs
        if depth >= MAX_NESTING:
            return too_large
        key = (id(item), depth if indent else 0)
        if key in memo:
            return memo[key]
        memo[key] = too_large  # while measuring: a value containing itself is too large
        total = 2 + len(item) * (2 + indent * (depth + 1))
        for child in children:
            total += size(child, depth + 1)
            if total > limit:
                break
        memo[key] = min(total, too_large)
        return memo[key]

    return size(value, 0)


def _check_value(value: Any, what: str) -> Any:
    """Refuse a built value that is too large, too long or nested too deeply."""
    if isinstance(value, str | bytes):
        if len(value) > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")
        return value
    if isinstance(value, list | tuple | dict | set | frozenset):
        if len(value) > MAX_ITEMS:
            raise TemplateLimitError(f"{what} result over {MAX_ITEMS} items")
        if _text_size(value) > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(
                f"{what} result over {MAX_OUTPUT_CHARS} characters as text"
                f" (or nested deeper than {MAX_NESTING} levels)"
            )
    return value


def _drain(values: Iterator[Any], what: str) -> list[Any]:
    """A lazy iterable (a ``map`` or ``select`` result) as a list, refused when too large."""
    items: list[Any] = []
    size = 0
    for item in values:
        _charge()
        items.append(item)
        size += _text_size(item)
        if len(items) > MAX_ITEMS or size > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(
                f"{what} input over {MAX_ITEMS} items or {MAX_OUTPUT_CHARS} characters"
            )
    return items


def _check_size_arguments(args: Sequence[Any], kwargs: Mapping[str, Any], what: str) -> None:
    """Refuse integer arguments larger than any width, count or length a prompt needs."""
    for name, arg in [*((None, a) for a in args), *kwargs.items()]:
        if name in ("_loop_vars", "_block_vars"):
            continue
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_SIZE_ARGUMENT:
            raise TemplateLimitError(
                f"{what} argument {arg if arg.bit_length() < 64 else 'given'} is over the"
                f" limit of {MAX_SIZE_ARGUMENT}"
            )


# -- formatting --------------------------------------------------------------------------------

_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([a-zA-Z%])")
_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[a-zA-Z%]?$")


def _width(digits: str | None, what: str) -> int:
    if not digits:
        return 0
    if len(digits) > 9 or int(digits) > MAX_SIZE_ARGUMENT:
        raise TemplateLimitError(
            f"{what}: field width or precision over the limit of {MAX_SIZE_ARGUMENT}"
        )
    return int(digits)


def _check_star_arguments(args: Any, what: str) -> None:
    values = args if isinstance(args, tuple | list) else (args,)
    _check_size_arguments(values, {}, what)


def check_printf(fmt: str, args: Any, what: str = "% formatting") -> None:
    """Refuse ``fmt % args`` when its fields ask for huge widths or the result is too long."""
    total = len(fmt)
    for star_width, precision, _ in _PRINTF_SPEC.findall(fmt):
        for digits in (star_width, precision):
            if digits == "*":
                _check_star_arguments(args, what)
                total += MAX_SIZE_ARGUMENT
            else:
                total += _width(digits, what)
    total += _text_size(args)
    if total > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")


def check_format(fmt: str, args: Sequence[Any], kwargs: Mapping[str, Any], what: str) -> None:
    """Refuse ``fmt.format(...)`` when its fields ask for huge widths or the result is too
    long; a width taken from an argument (``{:{w}}``) counts as the largest allowed."""
    total = len(fmt)
    pending = [fmt]
    while pending:
        for _, field_name, spec, _ in string.Formatter().parse(pending.pop()):
            if field_name is None or not spec:
                continue
            if "{" in spec:
                _check_size_arguments(args, kwargs, what)
                total += 2 * MAX_SIZE_ARGUMENT
                continue
            match = _FORMAT_SPEC.match(spec)
            if match is None:
                continue  # not a standard spec: format() itself will refuse it
            total += _width(match.group(1), what) + _width(match.group(2), what)
    total += _text_size(list(args)) + _text_size(dict(kwargs))
    if total > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")


# -- operators ---------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _check_power(base: Any, exponent: Any) -> None:
    if (
        _is_int(base)
        and _is_int(exponent)
        and exponent > 0
        and abs(base) > 1
        and exponent * math.log2(abs(base)) > MAX_INT_BITS
    ):
        raise TemplateLimitError(f"power result over {MAX_INT_BITS} bits")


def _check_repeat(sequence: Any, times: int) -> None:
    if times <= 0:
        return
    if isinstance(sequence, str | bytes):
        if len(sequence) * times > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(f"string repetition result over {MAX_OUTPUT_CHARS} characters")
    elif isinstance(sequence, list | tuple):
        if len(sequence) * times > MAX_ITEMS:
            raise TemplateLimitError(f"list repetition result over {MAX_ITEMS} items")
        if _text_size(sequence) * times > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(
                f"list repetition result over {MAX_OUTPUT_CHARS} characters as text"
            )


def _check_multiply(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(f"multiplication result over {MAX_INT_BITS} bits")
    elif _is_int(right):
        _check_repeat(left, right)
    elif _is_int(left):
        _check_repeat(right, left)


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        if len(left) + len(right) > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(
                f"string concatenation result over {MAX_OUTPUT_CHARS} characters"
            )
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        if len(left) + len(right) > MAX_ITEMS:
            raise TemplateLimitError(f"list concatenation result over {MAX_ITEMS} items")
        if _text_size(left) + _text_size(right) > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(
                f"list concatenation result over {MAX_OUTPUT_CHARS} characters as text"
            )


# -- filters -----------------------------------------------------------------------------------

# Filters whose arguments are values rather than sizes: no integer limit on them.
_VALUE_ARGUMENT_FILTERS: Final = frozenset(
    {
        "default",
        "d",
        "format",
        "map",
        "select",
        "reject",
        "selectattr",
        "rejectattr",
        "sum",
        "int",
        "float",
        "round",
        "attr",
        "items",
        "dictsort",
        "groupby",
        "sort",
        "unique",
        "min",
        "max",
        "replace",
        "join",
    }
)
# Filters doing per-character or per-item Python work: their input is kept to MAX_ITEMS.
_ITEMWISE_FILTERS: Final = frozenset(
    {
        "sort",
        "unique",
        "groupby",
        "dictsort",
        "min",
        "max",
        "sum",
        "urlize",
        "list",
        "batch",
        "slice",
        "wordwrap",
        "title",
        "wordcount",
    }
)


def _indent_width(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> int:
    return len(width) if isinstance(width, str) else int(width)


def _wordwrap_args(
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> tuple[int, int]:
    return int(width), len(wrapstring) if wrapstring is not None else 1


def _replace_args(s: Any, old: Any, new: Any, count: int | None = None) -> tuple[str, str]:
    return str(old), str(new)


def _join_args(value: Any, d: str = "", attribute: Any = None) -> str:
    return str(d)


def _tojson_indent(value: Any, indent: int | None = None) -> int:
    return int(indent or 0)


def _check_replace(text: str | bytes, old: Any, new: Any, what: str) -> None:
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        old, new = str(old), str(new)
    if len(new) <= len(old) or type(old) is not type(text):
        return
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if len(text) + occurrences * (len(new) - len(old)) > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")


def _check_join(items: Sequence[Any], separator: str | bytes, what: str) -> None:
    size = _text_size(list(items)) + len(separator) * max(len(items) - 1, 0)
    if size > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")


def _check_filter(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The estimates for filters whose result can be much larger than their input."""
    what = f"filter '{name}'"
    text = value if isinstance(value, str) else None
    if name in _ITEMWISE_FILTERS and hasattr(value, "__len__") and len(value) > MAX_ITEMS:
        raise TemplateLimitError(f"{what} input over {MAX_ITEMS} items or characters")
    if name == "indent" and text is not None:
        width = _indent_width(text, *args, **kwargs)
        if len(text) + (text.count("\n") + 1) * width > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")
    elif name == "wordwrap" and text is not None:
        width, wrap = _wordwrap_args(text, *args, **kwargs)
        lines = len(text) // max(width, 1) + text.count(" ") + text.count("\n") + 1
        if len(text) // max(width, 1) > MAX_RANGE_ITEMS:
            raise TemplateLimitError(f"{what} would make over {MAX_RANGE_ITEMS} lines")
        if len(text) + lines * wrap > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")
    elif name == "replace" and text is not None:
        _check_replace(text, *_replace_args(text, *args, **kwargs), what)
    elif name == "join" and isinstance(value, list | tuple):
        _check_join(value, _join_args(value, *args, **kwargs), what)
    elif name == "format":
        check_printf(str(value), kwargs or args, what)
    elif name == "tojson":
        indent = _tojson_indent(value, *args, **kwargs)
        if _text_size(value, indent=indent) > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")
    elif name == "pprint" and _text_size(value, indent=1) > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with this module's limits; it takes the context, so Jinja never calls it while
    compiling (it folds constant filter calls otherwise) and it counts against the budget."""
    pass_arg = getattr(func, "jinja_pass_arg", None)
    pass_name = getattr(pass_arg, "name", None)

    @pass_context
    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        _charge()
        what = f"filter '{name}'"
        if name not in _VALUE_ARGUMENT_FILTERS:
            _check_size_arguments(args, kwargs, what)
        if isinstance(value, Iterator):
            value = _drain(value, what)
        _check_filter(name, value, args, kwargs)
        if pass_name == "context":
            result = func(context, value, *args, **kwargs)
        elif pass_name == "eval_context":
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif pass_name == "environment":
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return _check_value(result, what)

    guarded.__name__ = getattr(func, "__name__", name)
    guarded.__doc__ = func.__doc__
    return guarded


# -- str methods -------------------------------------------------------------------------------

_REFUSED_METHODS: Final = frozenset({"translate", "maketrans"})
"""``str`` methods whose result size cannot be bounded from their arguments."""


_SCALARS: Final = (str, bytes, int, float)
"""Owners of methods whose integer arguments are sizes (``str.ljust``, ``int.to_bytes``...);
``Markup`` (a ``str``) re-implements many ``str`` methods in Python, so both bound builtin and
bound Python methods of these count. Container methods (``dict.get``, ``list.index``) take
values, not sizes."""


def _scalar_method(obj: Any) -> Any:
    """The ``str``/``bytes``/number a method is bound to, or ``None``."""
    if not isinstance(obj, types.BuiltinMethodType | types.MethodType):
        return None
    owner = getattr(obj, "__self__", None)
    return owner if isinstance(owner, _SCALARS) else None


def _check_method(
    owner: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Refuse a method call on a ``str``, ``bytes`` or number that would build too much;
    returns the arguments to call with (a lazy ``join`` input drained into a list)."""
    what = f"method '{type(owner).__name__}.{name}'"
    _check_size_arguments(args, kwargs, what)
    if not isinstance(owner, str | bytes):
        return args
    if name in _REFUSED_METHODS:
        raise SecurityError(f"{what} is not available in templates")
    if name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1], what)
    elif name == "expandtabs":
        size = int(args[0] if args else kwargs.get("tabsize", 8))
        tabs = owner.count("\t" if isinstance(owner, str) else b"\t")
        if len(owner) + tabs * size > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(f"{what} result over {MAX_OUTPUT_CHARS} characters")
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], list | tuple) else _drain(iter(args[0]), what)
        _check_join(items, owner, what)
        return (items, *args[1:])
    return args


# -- the instrumented template -----------------------------------------------------------------


def _helper(name: str, *args: nodes.Expr, lineno: int) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), list(args), [], None, None)
    return call.set_lineno(lineno)  # type: ignore[no-any-return]


class _Instrument(NodeTransformer):
    """Routes every loop, ``~`` and collection literal through the budget helpers."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _helper("am_iter", node.iter, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _helper("am_concat", *node.nodes, lineno=node.lineno)

    def _collection(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return _helper("am_collection", node, lineno=node.lineno)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        return self._collection(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        return self._collection(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        if node.ctx != "load":  # an assignment target: {% for a, b in ... %}
            self.generic_visit(node)
            return node
        return self._collection(node)


def _bounded_range(*args: int) -> range:
    _check_size_arguments((), {}, "range")
    result = range(*args)
    if len(result) > MAX_RANGE_ITEMS:
        raise TemplateLimitError(
            f"range of {len(result)} items is over the limit of {MAX_RANGE_ITEMS}"
        )
    return result


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable Jinja2 sandbox with this module's limits (see the module docstring).

    Immutable: list/dict ``append``, ``extend``, ``update``... are unsafe attributes, so a
    template cannot grow a value without going through a checked operator or filter.
    """

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self) -> None:
        super().__init__(autoescape=False, keep_trailing_newline=False)
        self.finalize = self._finalize
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # generates text by the paragraph: not for prompts
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}

    # -- hooks the compiled template calls ---------------------------------------------------

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _charge()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_multiply(left, right)
        elif operator == "+":
            _check_add(left, right)
        elif operator == "%" and isinstance(left, str | bytes):
            check_printf(left if isinstance(left, str) else left.decode("latin-1"), right)
        return self.binop_table[operator](left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _charge()
        owner = _scalar_method(obj)
        if owner is not None:
            args = _check_method(owner, obj.__name__, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        if getattr(obj, "__self__", None) is self:
            return result  # the budget helpers measure what they return themselves
        return _check_value(result, "call")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            if is_map and len(args) == 1 and isinstance(args[0], Mapping):
                check_format(fmt, (), args[0], f"method 'str.{value.__name__}'")
            else:
                check_format(fmt, args, kwargs, f"method 'str.{value.__name__}'")
            return wrapped(*args, **kwargs)

        return checked

    @pass_context
    def _finalize(self, context: Context, value: Any) -> Any:
        budget = _charge()
        size = len(value) if isinstance(value, str) else _text_size(value)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(
                f"printed value over {MAX_OUTPUT_CHARS} characters"
                f" (or nested deeper than {MAX_NESTING} levels)"
            )
        budget.produce(size)
        return value

    # -- helpers the instrumentation inserts (reached as environment attributes, which no
    # -- template can name) ------------------------------------------------------------------

    def am_iter(self, iterable: Any) -> Iterator[Any]:
        budget = _ACTIVE.get()
        for item in iterable:
            if budget is None:
                budget = _charge()
            else:
                budget.charge()
            yield item

    def am_concat(self, *values: Any) -> str:
        size = sum(len(v) if isinstance(v, str) else _text_size(v) for v in values)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(
                f"string concatenation result over {MAX_OUTPUT_CHARS} characters"
            )
        _charge().produce(size)
        return "".join(map(str, values))

    def am_collection(self, value: Any) -> Any:
        return _check_value(value, "list or dict literal")

    # -- compiling -----------------------------------------------------------------------------

    def compile_bounded(self, source: str, *, name: str | None = None) -> Template:
        """Parse, instrument and compile ``source``.

        Raises:
            TemplateSyntaxError: the source is not a Jinja2 template.
            TemplateLimitError: it is too long or nests too deeply to compile.
        """
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateLimitError(f"template over {MAX_TEMPLATE_CHARS} characters")
        try:
            tree = self.parse(source, name=name)
            tree = _Instrument().visit(tree)
            tree.set_environment(self)
            code = self.compile(tree, name=name or "<template>")
        except TemplateSyntaxError:
            raise
        except (RecursionError, MemoryError, SyntaxError) as exc:
            # Jinja's parser and code generator recurse over the template, and Python caps
            # nesting in generated code (parentheses, indentation): a too-deep template lands
            # here instead of crashing the worker.
            raise TemplateLimitError(
                f"template nests too deeply to compile ({type(exc).__name__})"
            ) from None
        return self.template_class.from_code(self, code, self.make_globals(None))


_ENV: BoundedEnvironment | None = None


def environment() -> BoundedEnvironment:
    """The one bounded environment every document template is compiled in."""
    global _ENV
    if _ENV is None:
        _ENV = BoundedEnvironment()
    return _ENV


def compile_template(source: str, *, name: str | None = None) -> Template:
    """``source`` compiled in the bounded environment (see ``compile_bounded``)."""
    return environment().compile_bounded(source, name=name)


@dataclass
class _Output:
    parts: list[str] = field(default_factory=list)
    size: int = 0


def render_bounded(
    template: Template,
    variables: Mapping[str, Any],
    *,
    seconds: float = RENDER_BUDGET_SECONDS,
) -> str:
    """Render ``template`` (from :func:`compile_template`) within the per-render budget.

    Raises:
        TemplateLimitError: the render went over a limit (time, steps, size, recursion).
        Exception: whatever else the template raised (undefined names, type errors).
    """
    started = time.perf_counter()
    deadline = started + seconds
    late = f"template exceeds the {round(seconds * 1000)} ms render budget"
    shared = _SHARED.get()
    if shared is not None and shared.left < seconds:
        deadline = started + shared.left
        late = (
            f"the document's templates exceed their {round(DOCUMENT_BUDGET_SECONDS * 1000)} ms"
            " render budget together"
        )
    budget = _Budget(deadline=deadline, late=late)
    token = _ACTIVE.set(budget)
    output = _Output()
    chunks = template.generate(**variables)
    try:
        for chunk in chunks:
            output.size += len(chunk)
            if output.size > MAX_OUTPUT_CHARS:
                raise TemplateLimitError(f"template output over {MAX_OUTPUT_CHARS} characters")
            output.parts.append(chunk)
            budget.charge()
    except RecursionError:
        raise TemplateLimitError("template recursion is too deep (macros or loops)") from None
    except MemoryError:
        raise TemplateLimitError("template ran out of memory") from None
    finally:
        chunks.close()
        _ACTIVE.reset(token)
        if shared is not None:
            shared.left -= time.perf_counter() - started
    return "".join(output.parts)
