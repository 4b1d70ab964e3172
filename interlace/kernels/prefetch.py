"""A hint that an array element will be read soon, for kernels whose reads jump.

The scatter kernels of :mod:`interlace.kernels.blockdiag` visit, for every row of the
rest, each level of the leading term that meets it: a jump to a level's entries
anywhere in arrays of 10^7 entries, then a short run through them. The processor's
own prefetcher cannot foresee the jump, so each visit starts with a wait on memory;
telling it a few visits ahead where the next ones start overlaps those waits (about
a third off the downdate at 10^7 rows). The hint changes no value.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, array, index):
    """Hint that ``array[index]`` (a 1-d array, an integer index) will be read soon:
    LLVM's ``llvm.prefetch`` (read, keep in every cache level, data). An index past
    the end is harmless (a prefetch never faults). Callable from compiled code only.
    """
    if not (isinstance(array, types.Array) and array.ndim == 1 and isinstance(index, types.Integer)):
        return None
    signature = types.void(array, index)

    def codegen(context, builder, sig, args):
        array_type = sig.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [args[1]], wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        mangled = getattr(byte_pointer, "intrinsic_name", "p0i8")  # "p0" where pointers are opaque
        function_type = ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32])
        function = cgutils.get_or_insert_function(builder.module, function_type, f"llvm.prefetch.{mangled}")
        builder.call(function, [builder.bitcast(pointer, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return signature, codegen
