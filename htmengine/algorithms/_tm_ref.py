"""numba plumbing of the TM's kernels: their compile options (``njit_borrowed``,
``njit_inner``, ``njit_inline``) and a borrowed reference to the ``TMArrays`` tuple.

numba passes a tuple argument by value, flattened: the ~50 arrays of ``TMArrays`` become
about 400 machine-level arguments (pointer, shape, strides, ... of each array) in every kernel
signature and at every call site.  That made the kernels' LLVM code several times larger than
their work and their cold compile slow.  The kernels called from Python take the tuple and turn
it into a ``TMRef`` once with :func:`tm_ref`: a pointer to a copy of the tuple in the entry
kernel's stack frame, valid while it runs.  Every kernel it calls receives that pointer (one
argument) and reads a field with ``a.name`` as on the tuple (a load through the pointer).  The
reference is borrowed: it holds no reference count (the arrays belong to the tuple the entry
kernel was given) and must not outlive the entry kernel's call (it cannot be returned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar, cast

from numba import njit
from numba.core import cgutils, types
from numba.core.datamodel import models
from numba.core.dispatcher import Dispatcher
from numba.core.imputils import impl_ret_borrowed
from numba.core.typing.templates import AttributeTemplate
from numba.extending import infer_getattr, intrinsic, lower_getattr_generic, register_model

from htmengine.algorithms._tm_state import TMArrays

# For the type checker a ``TMRef`` reads like the tuple it points to (``a.name`` has the
# type of the tuple's field ``name``), so the kernels taking one annotate it as the tuple.
TMRef: TypeAlias = TMArrays

_F = TypeVar("_F", bound=Callable[..., Any])

# numba's code-generation helpers carry no annotations: typed here as what they are used as
# (LLVM values and builders in, an LLVM value out).
_impl_ret_borrowed: Callable[[Any, Any, types.Type, Any], Any] = impl_ret_borrowed
_alloca_once_value: Callable[[Any, Any], Any] = cgutils.alloca_once_value
_lower_getattr_generic: Callable[[type[types.Type]], Callable[[_F], _F]] = \
    lower_getattr_generic


def njit_borrowed(func: _F) -> Dispatcher[_F]:
    """``njit(cache=True)`` without numba's reference counting (NRT), for kernels that
    allocate no array and only borrow the arrays they are given (which outlive the call).

    With NRT, every call of a kernel taking the ``TMArrays`` tuple increments and decrements
    the count of each of its ~50 arrays (atomic operations, about 0.1-0.5 us a call), which
    was more than half of a step's time.  Such a kernel must not call one that allocates.
    Like :func:`njit_inner` it is called from kernels only."""
    dispatcher: Dispatcher[_F] = njit(cache=True, **_BORROWED)(func)
    return dispatcher


# Kernels called only from other kernels need neither the CPython wrapper (which unboxes
# each array of the TMArrays tuple) nor the C-callable one numba builds by default: not
# generating them shortens the cold compile.
_INNER: dict[str, Any] = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}
# numba's (undocumented, underscore) option turning reference counting off; numba is pinned
_BORROWED: dict[str, Any] = {"_nrt": False, **_INNER}


def njit_inner(func: _F) -> Dispatcher[_F]:
    """``njit(cache=True)`` for a kernel called only from other kernels (not from Python)."""
    dispatcher: Dispatcher[_F] = njit(cache=True, **_INNER)(func)
    return dispatcher


def njit_inline(func: _F) -> Dispatcher[_F]:
    """``njit`` whose body numba inlines (as numba IR) at each call site instead of compiling
    it on its own, for kernels that mostly call other kernels.  Each kernel compiled on its own
    gets the optimised code of every kernel it calls linked in and optimised and translated to
    machine code again, so every level of calls repeats the work for all the levels below it;
    inlining the orchestrating kernels removes levels (their own code is small)."""
    return njit(inline="always")(func)


class TMRefType(types.Type):
    """numba type of a borrowed pointer to a ``TMArrays`` tuple of type ``tuple_type``."""

    def __init__(self, tuple_type: types.NamedTuple) -> None:
        self.tuple_type = tuple_type
        super().__init__(name=f"TMRef({tuple_type})")

    @property
    def mangling_args(self) -> tuple[str, tuple[()]]:
        """Short symbol names (the default spells out the ~50 array types)."""
        return "TMRef", ()


_BYTE_POINTER = cgutils.voidptr_t


@register_model(TMRefType)
class TMRefModel(models.PrimitiveModel):
    """A ``TMRef`` is a byte pointer to the tuple's LLVM structure (typed as the structure,
    each use would spell out its ~50 members in the LLVM code)."""

    def __init__(self, dmm: Any, fe_type: TMRefType) -> None:
        # numba's data models carry no annotations
        super().__init__(dmm, fe_type, _BYTE_POINTER)  # type: ignore[no-untyped-call]


_OFFSETS: dict[types.NamedTuple, list[int]] = {}


def _field_offset(context: Any, tuple_type: types.NamedTuple, index: int) -> int:
    """Byte offset of member ``index`` in the LLVM structure of ``tuple_type`` (computed once
    per tuple type: each size query makes llvmlite parse a module)."""
    offsets = _OFFSETS.get(tuple_type)
    if offsets is None:
        offsets = []
        offset = 0
        for member in tuple_type.types:
            llvm_type = context.get_value_type(member)
            align = context.get_abi_alignment(llvm_type)
            offset = (offset + align - 1) // align * align
            offsets.append(offset)
            offset += context.get_abi_sizeof(llvm_type)
        _OFFSETS[tuple_type] = offsets
    return offsets[index]


@infer_getattr
class TMRefAttributes(AttributeTemplate):
    """``ref.name`` has the type of the tuple's field ``name``."""

    key = TMRefType

    # numba's AttributeTemplate declares the optional hook as ``generic_resolve = NotImplemented``
    def generic_resolve(self, typ: TMRefType, attr: str) -> Any:  # type: ignore[override]
        """Type of field ``attr`` (None if the tuple has no such field)."""
        fields = typ.tuple_type.fields
        if attr in fields:
            return typ.tuple_type.types[fields.index(attr)]
        return None


@_lower_getattr_generic(TMRefType)
def _tm_ref_getattr(context: Any, builder: Any, typ: TMRefType, val: Any,
                    attr: str) -> Any:
    """Load field ``attr`` through the pointer (a new reference where NRT is on)."""
    index = typ.tuple_type.fields.index(attr)
    field_type = typ.tuple_type.types[index]
    offset = context.get_constant(types.intp, _field_offset(context, typ.tuple_type, index))
    address = builder.gep(val, [offset], inbounds=True)
    pointer = builder.bitcast(address, context.get_value_type(field_type).as_pointer())
    return _impl_ret_borrowed(context, builder, field_type, builder.load(pointer))


def _tm_ref(typingctx: Any, arrays: types.Type) -> Any:
    """Typing and code generation of :data:`tm_ref` for a tuple of numba type ``arrays``."""
    if not isinstance(arrays, types.NamedTuple):
        return None

    def codegen(context: Any, builder: Any, signature: Any,
                args: list[Any]) -> Any:
        return builder.bitcast(_alloca_once_value(builder, args[0]), _BYTE_POINTER)

    return TMRefType(arrays)(arrays), codegen


# ``tm_ref(arrays)``: the ``TMRef`` to the ``TMArrays`` tuple ``arrays`` (in a kernel called
# from Python). Kernels call the intrinsic with the tuple only (numba supplies the typing
# context), which is the signature the type checker is given here.
tm_ref = cast(Callable[[TMArrays], TMRef], intrinsic(_tm_ref))
