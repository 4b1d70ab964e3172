"""Sparse Cholesky factorisation A = L L' of a symmetric positive definite matrix.

The kernels work on a matrix that is already in its final (fill-reducing) order; the
ordering, the input layout and the permutations are :mod:`interlace.linalg.sparse_cholesky`'s
business. Index arrays are int64, values float64, and every compressed structure is
CSC with sorted row indices:

* the *upper* pattern of A, ``(upper_indptr, upper_indices)``: column ``k`` lists the
  rows ``i < k`` where A is non-zero (the diagonal is implied; the same arrays are the
  CSR of the strictly lower triangle);
* the factor, ``(L_indptr, L_indices, L_values)``: column ``j`` starts with its diagonal,
  then the rows ``i > j`` of its pattern, ascending;
* the *supernodes*, ``starts``: runs of consecutive columns whose patterns are aligned,
  so that column ``first + c`` of a supernode holds the supernode's rows from its c-th
  on, a dense lower trapezoid stored column by column.

The symbolic phase (elimination tree, postorder, column counts, pattern of L, relaxed
supernodes, the list of block updates between supernodes) runs once per pattern;
:func:`factor_numeric` (left-looking and supernodal: dense block updates with
contiguous loops, one indexed scatter per block) runs once per set of values and
returns a status instead of raising. :func:`selected_inverse` computes the entries of
A^{-1} on the pattern of L by the Takahashi recurrences, from the last supernode back.
The fill-reducing ordering is :func:`interlace.kernels.amd.approximate_minimum_degree`.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel


@kernel
def permuted_upper_pattern(lower_indptr, lower_indices, inverse_permutation):
    """Strictly upper pattern of P A P' (CSC, sorted rows) from the lower triangle of A.

    ``inverse_permutation[i]`` is the new index of original index i. Entry (i, j) of A
    goes to (min, max) of (inverse_permutation[i], inverse_permutation[j]); a bucket
    pass by row and then a stable one by column leave each column's rows sorted. The
    diagonal is left out (every kernel here treats it as present).
    """
    n = lower_indptr.shape[0] - 1
    by_row_indptr = np.zeros(n + 1, dtype=np.int64)
    for j in range(n):
        for p in range(lower_indptr[j], lower_indptr[j + 1]):
            a = inverse_permutation[lower_indices[p]]
            b = inverse_permutation[j]
            if a != b:
                by_row_indptr[min(a, b) + 1] += 1
    for r in range(n):
        by_row_indptr[r + 1] += by_row_indptr[r]
    size = by_row_indptr[n]
    by_row_columns = np.empty(size, dtype=np.int64)
    fill = by_row_indptr[:n].copy()
    upper_indptr = np.zeros(n + 1, dtype=np.int64)
    for j in range(n):
        for p in range(lower_indptr[j], lower_indptr[j + 1]):
            a = inverse_permutation[lower_indices[p]]
            b = inverse_permutation[j]
            if a != b:
                r = min(a, b)
                by_row_columns[fill[r]] = max(a, b)
                fill[r] += 1
                upper_indptr[max(a, b) + 1] += 1
    for c in range(n):
        upper_indptr[c + 1] += upper_indptr[c]
    upper_indices = np.empty(size, dtype=np.int64)
    fill = upper_indptr[:n].copy()
    for r in range(n):
        for t in range(by_row_indptr[r], by_row_indptr[r + 1]):
            c = by_row_columns[t]
            upper_indices[fill[c]] = r
            fill[c] += 1
    return upper_indptr, upper_indices


@kernel
def is_lower_pattern(indptr, indices):
    """Whether ``indptr``/``indices`` are a lower-triangular CSC pattern of order
    len(indptr) - 1: a non-decreasing pointer from 0 to len(indices), and each column's
    rows sorted, distinct and between the column and n - 1."""
    n = indptr.shape[0] - 1
    if n < 0 or indptr[0] != 0 or indptr[n] != indices.shape[0]:
        return False
    for j in range(n):
        if indptr[j + 1] < indptr[j]:
            return False
        previous = j - 1
        for p in range(indptr[j], indptr[j + 1]):
            r = indices[p]
            if r <= previous or r >= n:
                return False
            previous = r
    return True


@kernel
def leading_adjacency(lower_indptr, lower_indices, n_leading):
    """The graph of the leading ``n_leading`` columns (both triangles, no diagonal) as
    CSR with sorted columns, from the lower triangle of A (CSC, sorted rows).

    Row a lists the columns c < a whose lower part holds a (met in increasing c), then
    the rows r > a of column a (sorted already): sorted without a sort.
    """
    degree = np.zeros(n_leading + 1, dtype=np.int64)
    for c in range(n_leading):
        for p in range(lower_indptr[c], lower_indptr[c + 1]):
            r = lower_indices[p]
            if c < r < n_leading:
                degree[r + 1] += 1
                degree[c + 1] += 1
    for a in range(n_leading):
        degree[a + 1] += degree[a]
    indices = np.empty(degree[n_leading], dtype=np.int64)
    fill = degree[:n_leading].copy()
    for c in range(n_leading):
        for p in range(lower_indptr[c], lower_indptr[c + 1]):
            r = lower_indices[p]
            if c < r < n_leading:
                indices[fill[r]] = c
                fill[r] += 1
    for a in range(n_leading):
        for p in range(lower_indptr[a], lower_indptr[a + 1]):
            r = lower_indices[p]
            if a < r < n_leading:
                indices[fill[a]] = r
                fill[a] += 1
    return degree, indices


@kernel
def elimination_tree(upper_indptr, upper_indices):
    """Parent of every column in the elimination tree of A (-1 for a root).

    Takes the upper pattern of A (diagonal optional). Uses path compression through a
    virtual ancestor array, so the cost is almost linear in nnz(A).
    """
    n = upper_indptr.shape[0] - 1
    parent = np.full(n, -1, dtype=np.int64)
    ancestor = np.full(n, -1, dtype=np.int64)
    for k in range(n):
        for p in range(upper_indptr[k], upper_indptr[k + 1]):
            i = upper_indices[p]
            # climb from i to the root of its current subtree, pointing every node at k
            while i != -1 and i < k:
                next_i = ancestor[i]
                ancestor[i] = k
                if next_i == -1:
                    parent[i] = k
                i = next_i
    return parent


@kernel
def postorder(parent):
    """A postorder of the forest ``parent``: ``order[t]`` is the t-th node visited.

    Children are visited in increasing order, by a depth-first search with an explicit
    stack, so every node comes after all of its descendants.
    """
    n = parent.shape[0]
    first_child = np.full(n, -1, dtype=np.int64)
    next_sibling = np.full(n, -1, dtype=np.int64)
    for j in range(n - 1, -1, -1):
        p = parent[j]
        if p != -1:
            next_sibling[j] = first_child[p]
            first_child[p] = j
    order = np.empty(n, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    count = 0
    for root in range(n):
        if parent[root] != -1:
            continue
        top = 0
        stack[0] = root
        while top >= 0:
            node = stack[top]
            child = first_child[node]
            if child == -1:
                top -= 1
                order[count] = node
                count += 1
            else:
                first_child[node] = next_sibling[child]
                top += 1
                stack[top] = child
    return order


@kernel
def column_counts(upper_indptr, upper_indices, parent):
    """Number of non-zeros in each column of L (diagonal included).

    Row k of L is the union of the etree paths from each i < k with A[i, k] != 0 up to
    k (the *row subtree*); walking those paths with a mark per row touches every
    non-zero of L once, so the cost is O(nnz(L)).
    """
    n = upper_indptr.shape[0] - 1
    counts = np.ones(n, dtype=np.int64)
    mark = np.full(n, -1, dtype=np.int64)
    for k in range(n):
        mark[k] = k
        for p in range(upper_indptr[k], upper_indptr[k + 1]):
            i = upper_indices[p]
            while i < k and mark[i] != k:
                counts[i] += 1
                mark[i] = k
                i = parent[i]
    return counts


@kernel
def factor_pattern(upper_indptr, upper_indices, parent, L_indptr):
    """Row indices of L (CSC, diagonal first, ascending) from its column pointers.

    Row k is appended to every column of its row subtree as k increases, so each
    column's rows come out sorted with no sort.
    """
    n = upper_indptr.shape[0] - 1
    L_indices = np.empty(L_indptr[n], dtype=np.int64)
    fill = np.empty(n, dtype=np.int64)
    mark = np.full(n, -1, dtype=np.int64)
    for k in range(n):
        L_indices[L_indptr[k]] = k
        fill[k] = L_indptr[k] + 1
        mark[k] = k
        for p in range(upper_indptr[k], upper_indptr[k + 1]):
            i = upper_indices[p]
            while i < k and mark[i] != k:
                L_indices[fill[i]] = k
                fill[i] += 1
                mark[i] = k
                i = parent[i]
    return L_indices


@kernel
def find_entry(indptr, indices, row, column):
    """Position of entry (row, column) of a CSC pattern with sorted rows, by bisection
    in the column; -1 if absent."""
    lo = indptr[column]
    hi = indptr[column + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < row:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < indptr[column + 1] and indices[lo] == row else -1


@kernel
def locate_entries(L_indptr, L_indices, rows, columns):
    """Position in the CSC arrays of each entry (rows[t], columns[t]), or -1 if absent.

    Each entry is looked up in the lower triangle, at (max, min) of its two indices.
    """
    m = rows.shape[0]
    positions = np.empty(m, dtype=np.int64)
    for t in range(m):
        i = rows[t]
        j = columns[t]
        if i < j:
            i, j = j, i
        positions[t] = find_entry(L_indptr, L_indices, i, j)
    return positions


@kernel
def permuted_positions(L_indptr, L_indices, lower_indptr, lower_indices, inverse_permutation):
    """Position in the factor's CSC arrays of each entry of A's lower CSC pattern, once
    permuted (entry (i, j) of A is entry (inverse_permutation[i], inverse_permutation[j])
    of P A P'), or -1 if absent: :func:`locate_entries` without the index arrays."""
    positions = np.empty(lower_indices.shape[0], dtype=np.int64)
    for j in range(lower_indptr.shape[0] - 1):
        pj = inverse_permutation[j]
        for t in range(lower_indptr[j], lower_indptr[j + 1]):
            pi = inverse_permutation[lower_indices[t]]
            if pi < pj:
                positions[t] = find_entry(L_indptr, L_indices, pj, pi)
            else:
                positions[t] = find_entry(L_indptr, L_indices, pi, pj)
    return positions


@kernel
def scatter_values(values, positions, L_values):
    """L_values = 0, then L_values[positions[t]] += values[t]: the matrix in place."""
    L_values[:] = 0.0
    for t in range(values.shape[0]):
        L_values[positions[t]] += values[t]


@kernel
def _aligned(L_indptr, L_indices, k):
    """True when column k - 1 of L, below its diagonal, has exactly column k's pattern."""
    count_before = L_indptr[k] - L_indptr[k - 1]
    return (
        count_before == L_indptr[k + 1] - L_indptr[k] + 1
        and count_before > 1
        and L_indices[L_indptr[k - 1] + 1] == k
    )


@kernel
def _merge_is_cheap(width, entries, exact_entries):
    """The relaxed-supernode rule: merge into ``width`` columns holding ``entries``
    stored entries when few enough of them are padding (limits as in CHOLMOD)."""
    zeros = (entries - exact_entries) / entries
    return (
        width <= 4 or (width <= 16 and zeros < 0.8) or (width <= 48 and zeros < 0.1) or zeros < 0.05
    )


@kernel
def relaxed_supernodes(L_indptr, L_indices, max_width):
    """Supernodes of L after relaxed amalgamation, and the pattern they need.

    Runs of aligned columns (column k - 1's pattern below its diagonal is column k's:
    k is the parent of k - 1 and the counts differ by one) are fundamental supernodes.
    A supernode is merged into the next one when that one holds its parent (the etree
    parent of its last column is the next one's first column), the merged width stays
    within ``max_width`` and the explicit zeros it adds are few (:func:`_merge_is_cheap`).
    A supernode with columns f..l and rows R below them stores column f + c as the rows
    f + c..l, then R: a dense lower trapezoid, contiguous in CSC. The padded pattern is
    still the pattern of a Cholesky factor (each column's rows form a clique), so the
    solves and the selected inverse work on it unchanged; its extra entries are zeros.

    Returns ``(starts, L_indptr, L_indices)``: the first column of each supernode then
    n, and the padded pattern.
    """
    n = L_indptr.shape[0] - 1
    starts = np.empty(n + 1, dtype=np.int64)
    if n == 0:
        starts[0] = 0
        return starts[:1].copy(), L_indptr.copy(), L_indices.copy()
    # fundamental supernodes
    fundamental = np.empty(n + 1, dtype=np.int64)
    fundamental[0] = 0
    n_fundamental = 1
    width = 1
    for k in range(1, n):
        if _aligned(L_indptr, L_indices, k) and width < max_width:
            width += 1
        else:
            fundamental[n_fundamental] = k
            n_fundamental += 1
            width = 1
    fundamental[n_fundamental] = n
    # greedy amalgamation of each supernode into the next when it is its parent
    starts[0] = 0
    count = 1
    first = 0
    last = fundamental[1] - 1
    exact_entries = L_indptr[last + 1] - L_indptr[first]
    for s in range(1, n_fundamental):
        f = fundamental[s]
        l = fundamental[s + 1] - 1
        next_entries = L_indptr[l + 1] - L_indptr[f]
        below = L_indptr[last + 1] - L_indptr[last] - 1
        merge = below > 0 and L_indices[L_indptr[last] + 1] == f
        if merge:
            w = l - first + 1
            height = (f - first) + (L_indptr[f + 1] - L_indptr[f])
            entries = w * height - w * (w - 1) // 2
            merge = w <= max_width and _merge_is_cheap(w, entries, exact_entries + next_entries)
        if merge:
            exact_entries += next_entries
        else:
            starts[count] = f
            count += 1
            first = f
            exact_entries = next_entries
        last = l
    starts[count] = n
    starts = starts[: count + 1].copy()
    # the padded pattern: column first + c holds first + c..last, then the rows below last
    new_indptr = np.zeros(n + 1, dtype=np.int64)
    for s in range(count):
        first = starts[s]
        last = starts[s + 1] - 1
        below = L_indptr[last + 1] - L_indptr[last] - 1
        for j in range(first, last + 1):
            new_indptr[j + 1] = new_indptr[j] + (last - j + 1) + below
    new_indices = np.empty(new_indptr[n], dtype=np.int64)
    for s in range(count):
        first = starts[s]
        last = starts[s + 1] - 1
        below_start = L_indptr[last] + 1
        below = L_indptr[last + 1] - below_start
        for j in range(first, last + 1):
            p = new_indptr[j]
            for i in range(j, last + 1):
                new_indices[p] = i
                p += 1
            for t in range(below):
                new_indices[p + t] = L_indices[below_start + t]
    return starts, new_indptr, new_indices


@kernel
def supernode_updates(L_indptr, L_indices, starts):
    """The block updates of the supernodal factorisation, grouped by target supernode.

    Supernode K updates supernode J > K when rows of J's columns occur below K's
    diagonal block; those rows are contiguous in K's last column. Returns
    ``(update_indptr, source, position, n_rows, buffer_size)``: the updates of J are
    ``update_indptr[J]:update_indptr[J + 1]`` (sources ascending), ``position`` is where
    the first such row sits in K's last column, ``n_rows`` how many there are, and
    ``buffer_size`` the largest update block (rows from there down times ``n_rows``).
    """
    n_supernodes = starts.shape[0] - 1
    n = L_indptr.shape[0] - 1
    owner = np.empty(n, dtype=np.int64)
    for s in range(n_supernodes):
        for k in range(starts[s], starts[s + 1]):
            owner[k] = s
    update_indptr = np.zeros(n_supernodes + 1, dtype=np.int64)
    for s in range(n_supernodes):
        last = starts[s + 1] - 1
        p = L_indptr[last] + 1
        end = L_indptr[last + 1]
        while p < end:
            target = owner[L_indices[p]]
            while p < end and owner[L_indices[p]] == target:
                p += 1
            update_indptr[target + 1] += 1
    for s in range(n_supernodes):
        update_indptr[s + 1] += update_indptr[s]
    size = update_indptr[n_supernodes]
    source = np.empty(size, dtype=np.int64)
    position = np.empty(size, dtype=np.int64)
    n_rows = np.empty(size, dtype=np.int64)
    fill = update_indptr[:n_supernodes].copy()
    buffer_size = 1
    for s in range(n_supernodes):
        last = starts[s + 1] - 1
        p = L_indptr[last] + 1
        end = L_indptr[last + 1]
        while p < end:
            target = owner[L_indices[p]]
            q = p
            while q < end and owner[L_indices[q]] == target:
                q += 1
            t = fill[target]
            source[t] = s
            position[t] = p
            n_rows[t] = q - p
            fill[target] += 1
            buffer_size = max(buffer_size, (q - p) * (end - p))
            p = q
    return update_indptr, source, position, n_rows, buffer_size


@kernel
def factor_numeric(
    L_indptr,
    L_indices,
    starts,
    update_indptr,
    source,
    position,
    n_rows,
    L_values,
    relative,
    buffer,
):
    """Left-looking supernodal Cholesky in place; returns -1, or the first failing column.

    On entry ``L_values`` holds the lower triangle of A on the pattern of L (zeros where
    A has none); on exit it holds L. For each supernode J in turn, every update from a
    supernode K < J (:func:`supernode_updates`) is formed as a dense block in ``buffer``
    (the rows of K from J's first row down, times the columns of K, times the rows of K
    that are columns of J) with contiguous loops, then subtracted from J's columns
    through ``relative`` (the offset of each row in J's first column). J's trapezoid is
    then factored in place, column by column. A pivot that is not positive (or not
    finite) stops the factorisation and its column is returned.
    """
    n_supernodes = starts.shape[0] - 1
    for J in range(n_supernodes):
        first = starts[J]
        width = starts[J + 1] - first
        height = L_indptr[first + 1] - L_indptr[first]
        for t in range(height):
            relative[L_indices[L_indptr[first] + t]] = t
        for u in range(update_indptr[J], update_indptr[J + 1]):
            K = source[u]
            k_last = starts[K + 1] - 1
            top = position[u]
            offset = top - L_indptr[k_last]  # of the first row, in K's last column
            rows = L_indptr[k_last + 1] - top
            columns = n_rows[u]
            buffer[: rows * columns] = 0.0
            for k in range(starts[K], k_last + 1):
                base = L_indptr[k] + offset + (k_last - k)
                for c in range(columns):
                    l_ck = L_values[base + c]
                    # zero-based loops over slices: no index wrap-around, so they vectorise
                    into = buffer[c * rows + c : (c + 1) * rows]
                    below = L_values[base + c : base + rows]
                    for i in range(rows - c):
                        into[i] += below[i] * l_ck
            for c in range(columns):
                y = L_indices[top + c]
                column_start = L_indptr[y] - (y - first)
                b = c * rows
                for i in range(c, rows):
                    L_values[column_start + relative[L_indices[top + i]]] -= buffer[b + i]
        for c in range(width):
            pj = L_indptr[first + c]
            length = height - c
            into = L_values[pj : pj + length]
            for c2 in range(c):
                src = L_indptr[first + c2] + (c - c2)
                l_cc2 = L_values[src]
                below = L_values[src : src + length]
                for i in range(length):
                    into[i] -= below[i] * l_cc2
            pivot = into[0]
            if not (pivot > 0.0 and pivot < np.inf):
                return first + c
            d = np.sqrt(pivot)
            into[0] = d
            for i in range(1, length):
                into[i] /= d
    return -1


@kernel
def log_diagonal_sum(L_indptr, L_values):
    """Sum of log L[j, j]: half of log det A."""
    n = L_indptr.shape[0] - 1
    total = 0.0
    for j in range(n):
        total += np.log(L_values[L_indptr[j]])
    return total


@kernel
def solve_lower(L_indptr, L_indices, L_values, b):
    """b = L^{-1} b in place, for b of shape (n, m) (C order: each row's m values together)."""
    n = L_indptr.shape[0] - 1
    m = b.shape[1]
    for j in range(n):
        d = L_values[L_indptr[j]]
        for c in range(m):
            b[j, c] /= d
        for p in range(L_indptr[j] + 1, L_indptr[j + 1]):
            i = L_indices[p]
            l_ij = L_values[p]
            for c in range(m):
                b[i, c] -= l_ij * b[j, c]


@kernel
def solve_lower_transpose(L_indptr, L_indices, L_values, b):
    """b = L^{-T} b in place, for b of shape (n, m)."""
    n = L_indptr.shape[0] - 1
    m = b.shape[1]
    for j in range(n - 1, -1, -1):
        for p in range(L_indptr[j] + 1, L_indptr[j + 1]):
            i = L_indices[p]
            l_ij = L_values[p]
            for c in range(m):
                b[j, c] -= l_ij * b[i, c]
        d = L_values[L_indptr[j]]
        for c in range(m):
            b[j, c] /= d


@kernel
def selected_inverse(L_indptr, L_indices, L_values, starts, inverse_values):
    """Entries of A^{-1} on the pattern of L (the Takahashi recurrences), by supernodes.

    With Z = A^{-1}, Z L = L^{-T}, whose lower part is zero and whose diagonal blocks
    are the inverses of L's. For a supernode S with diagonal block D (w x w) and the block
    B below it on rows R (m x w), the columns of S in Z follow from Z[R, R], which lies
    on the pattern and is already final when the supernodes are taken from the last:

        U = B D^{-1},    Z[R, S] = -Z[R, R] U,    Z[S, S] = (D D')^{-1} - Z[R, S]' U.

    Z[R, R] is never formed: each column r_b of R is scanned once in the stored Z, and
    every stored Z[r_a, r_b] with r_a also in R (found through a dense row-to-index map)
    adds a length-w row update on each side. ``inverse_values`` receives Z on L's pattern.
    """
    n = L_indptr.shape[0] - 1
    n_supernodes = starts.shape[0] - 1
    size = 1
    for S in range(n_supernodes):
        last = starts[S + 1] - 1
        size = max(size, (L_indptr[last + 1] - L_indptr[last]) * (starts[S + 1] - starts[S]))
    max_width = 1
    for S in range(n_supernodes):
        max_width = max(max_width, starts[S + 1] - starts[S])
    gram_scratch = np.empty((max_width, max_width))
    U = np.empty(size)  # m x w, row-major
    Z_RS = np.empty(size)  # m x w, row-major
    where = np.full(n, -1, dtype=np.int64)
    for S in range(n_supernodes - 1, -1, -1):
        first = starts[S]
        last = starts[S + 1] - 1
        w = last - first + 1
        below = L_indptr[last] + 1  # R, the rows under the supernode, sit here in `last`
        m = L_indptr[last + 1] - below
        for a in range(m):
            where[L_indices[below + a]] = a
        # U = B D^{-1}, one row at a time: u D = b, from the last entry back
        for a in range(m):
            u = U[a * w : (a + 1) * w]
            for c in range(w - 1, -1, -1):
                column = L_indptr[first + c]
                total = L_values[column + (w - c) + a]  # B[a, c]
                for c2 in range(c + 1, w):
                    total -= u[c2] * L_values[column + (c2 - c)]  # D[c2, c]
                u[c] = total / L_values[column]
        # Z[R, S] = -Z[R, R] U
        Z_RS[: m * w] = 0.0
        for b in range(m):
            r_b = L_indices[below + b]
            u_b = U[b * w : (b + 1) * w]
            z_b = Z_RS[b * w : (b + 1) * w]
            z_bb = inverse_values[L_indptr[r_b]]
            for c in range(w):
                z_b[c] -= z_bb * u_b[c]
            for q in range(L_indptr[r_b] + 1, L_indptr[r_b + 1]):
                a = where[L_indices[q]]
                if a >= 0:
                    z_ab = inverse_values[q]
                    u_a = U[a * w : (a + 1) * w]
                    z_a = Z_RS[a * w : (a + 1) * w]
                    for c in range(w):
                        z_a[c] -= z_ab * u_b[c]
                        z_b[c] -= z_ab * u_a[c]
        # Z[S, S] = (D D')^{-1} - Z[R, S]' U, written with Z[R, S] into S's columns
        for c in range(w):
            column = L_indptr[first + c]
            for r in range(c, w):  # rows first + r of column first + c
                total = 0.0
                for a in range(m):
                    total -= Z_RS[a * w + r] * U[a * w + c]
                inverse_values[column + (r - c)] = total
            for a in range(m):
                inverse_values[column + (w - c) + a] = Z_RS[a * w + c]
        _add_inverse_of_gram(L_indptr, L_values, first, w, inverse_values, gram_scratch)
        for a in range(m):
            where[L_indices[below + a]] = -1


@kernel
def _add_inverse_of_gram(L_indptr, L_values, first, w, inverse_values, M):
    """Add (D D')^{-1} to the diagonal block of the supernode at ``first`` (width w)
    held in ``inverse_values``; D is that block of L. (D D')^{-1} = M'M with M = D^{-1}
    (lower triangular, in the scratch ``M``), whose columns come from forward substitution."""
    for c in range(w):
        M[c, c] = 1.0 / L_values[L_indptr[first + c]]
        for r in range(c + 1, w):
            total = 0.0
            for t in range(c, r):
                total -= L_values[L_indptr[first + t] + (r - t)] * M[t, c]
            M[r, c] = total / L_values[L_indptr[first + r]]
    for c in range(w):
        column = L_indptr[first + c]
        for r in range(c, w):
            total = 0.0
            for t in range(r, w):
                total += M[t, r] * M[t, c]
            inverse_values[column + (r - c)] += total


@kernel
def gather_entries(L_indptr, L_indices, values, rows, columns, out):
    """out[t] = the symmetric matrix held on the pattern of L at (rows[t], columns[t]).

    Returns the number of entries not in the pattern (their ``out`` is set to NaN).
    """
    positions = locate_entries(L_indptr, L_indices, rows, columns)
    missing = 0
    for t in range(positions.shape[0]):
        if positions[t] >= 0:
            out[t] = values[positions[t]]
        else:
            out[t] = np.nan
            missing += 1
    return missing
