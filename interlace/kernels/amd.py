"""Approximate minimum degree ordering (AMD) of a symmetric pattern, in numba.

The fill-reducing ordering of :class:`interlace.linalg.sparse_cholesky.SparseCholesky`:
variables are eliminated in order of (approximate) external degree on the quotient
graph, eliminated variables becoming elements that stand for the cliques they
created, indistinguishable variables merged.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

# --- approximate minimum degree ordering ------------------------------------------
# Node status in the quotient graph of the ordering below.
_VARIABLE = 0  # an uneliminated (principal) variable
_ELEMENT = 1  # an eliminated variable standing for the clique it created
_DEAD = 2  # an element absorbed into a newer one, or a variable eliminated with a pivot
_MERGED = 3  # a variable merged into an indistinguishable principal variable


@kernel
def _compact_lists(lists, start, length, status, end):
    """Move the live adjacency lists to the front of ``lists``; return the new end.

    The first entry of each live list is parked in ``start`` and replaced by the
    marker -(node + 1), so one left-to-right sweep finds the lists in storage order.
    """
    n = start.shape[0]
    for i in range(n):
        if (status[i] == _VARIABLE or status[i] == _ELEMENT) and length[i] > 0:
            q = start[i]
            start[i] = lists[q]
            lists[q] = -(i + 1)
    dst = 0
    src = 0
    while src < end:
        if lists[src] < 0:
            i = -lists[src] - 1
            lists[dst] = start[i]
            start[i] = dst
            for t in range(1, length[i]):
                lists[dst + t] = lists[src + t]
            dst += length[i]
            src += length[i]
        else:
            src += 1
    return dst


@kernel
def _unlink_degree(i, degree, head, next_node, prev_node):
    """Remove variable i from the list of variables of its degree."""
    if prev_node[i] != -1:
        next_node[prev_node[i]] = next_node[i]
    else:
        head[degree[i]] = next_node[i]
    if next_node[i] != -1:
        prev_node[next_node[i]] = prev_node[i]


@kernel
def _link_degree(i, degree, head, next_node, prev_node):
    """Put variable i at the head of the list of variables of its degree."""
    d = degree[i]
    next_node[i] = head[d]
    prev_node[i] = -1
    if head[d] != -1:
        prev_node[head[d]] = i
    head[d] = i


@kernel
def approximate_minimum_degree(indptr, indices):
    """A fill-reducing order of a symmetric pattern: ``order[t]`` is the t-th pivot.

    Takes the full symmetric pattern (both triangles, CSR or CSC; the diagonal is
    ignored). This is the approximate minimum degree algorithm of Amestoy, Davis and
    Duff (SIAM J. Matrix Anal. Appl. 17, 1996), written from its description: the
    elimination runs on a quotient graph of variables and elements (cliques left by
    eliminated pivots) held in one integer array, with

    * approximate external degrees (the bound min(n - k, d_old + |Lp \\ i|,
      |A_i \\ i| + |Lp \\ i| + sum_e |Le \\ Lp|)) instead of exact ones;
    * element absorption, including aggressive absorption of elements inside Lp;
    * mass elimination of variables whose only neighbour is the new element;
    * supervariables: indistinguishable variables found by hashing are merged and
      eliminated together;
    * compaction of the integer array when it fills up (and growth if needed).

    Dense rows get no special treatment here: the caller orders them last.
    """
    n = indptr.shape[0] - 1
    order = np.empty(n, dtype=np.int64)
    if n == 0:
        return order
    nnz = indptr[n]
    size = nnz + nnz // 5 + 2 * n + 1
    lists = np.empty(size, dtype=np.int64)
    start = np.empty(n, dtype=np.int64)
    length = np.zeros(n, dtype=np.int64)
    n_elements = np.zeros(n, dtype=np.int64)  # elements at the front of a variable's list
    weight = np.ones(n, dtype=np.int64)  # supervariable size; negated while in Lp
    degree = np.zeros(n, dtype=np.int64)
    status = np.zeros(n, dtype=np.int64)
    free = 0
    for i in range(n):
        start[i] = free
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j != i:
                lists[free] = j
                free += 1
        length[i] = free - start[i]
        degree[i] = length[i]
    head = np.full(n + 1, -1, dtype=np.int64)
    next_node = np.full(n, -1, dtype=np.int64)
    prev_node = np.full(n, -1, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        _link_degree(i, degree, head, next_node, prev_node)
    stamp = np.zeros(n, dtype=np.int64)  # |Le \ Lp| + w_flag for the elements touched
    w_flag = 1
    mark = np.zeros(n, dtype=np.int64)
    mark_flag = 0
    hash_value = np.zeros(n, dtype=np.int64)
    hash_head = np.full(n, -1, dtype=np.int64)
    hash_next = np.full(n, -1, dtype=np.int64)
    merged_into = np.full(n, -1, dtype=np.int64)
    sequence = np.empty(n, dtype=np.int64)
    n_sequence = 0
    n_eliminated = 0
    min_degree = 0
    while n_eliminated < n:
        # 1. the pivot: a variable of least approximate degree
        while head[min_degree] == -1:
            min_degree += 1
        p = head[min_degree]
        _unlink_degree(p, degree, head, next_node, prev_node)
        pivot_weight = weight[p]
        n_eliminated += pivot_weight
        sequence[n_sequence] = p
        n_sequence += 1
        weight[p] = -pivot_weight
        # 2. room for the new element Lp at the end of the array
        bound = length[p] - n_elements[p]
        for t in range(start[p], start[p] + n_elements[p]):
            e = lists[t]
            if status[e] == _ELEMENT:
                bound += length[e]
        if free + bound > size:
            free = _compact_lists(lists, start, length, status, free)
            if free + bound > size:
                size = max(2 * size, free + bound + n)
                grown = np.empty(size, dtype=np.int64)
                grown[:free] = lists[:free]
                lists = grown
        # 3. Lp = the variables of p's elements and of p's own list; absorb the elements
        lp_start = free
        lp_weight = 0
        for t in range(start[p], start[p] + length[p]):
            e = lists[t]
            if t < start[p] + n_elements[p]:
                if status[e] != _ELEMENT:
                    continue
                for s in range(start[e], start[e] + length[e]):
                    i = lists[s]
                    if status[i] == _VARIABLE and weight[i] > 0:
                        lp_weight += weight[i]
                        weight[i] = -weight[i]
                        lists[free] = i
                        free += 1
                        _unlink_degree(i, degree, head, next_node, prev_node)
                status[e] = _DEAD
            elif status[e] == _VARIABLE and weight[e] > 0:
                lp_weight += weight[e]
                weight[e] = -weight[e]
                lists[free] = e
                free += 1
                _unlink_degree(e, degree, head, next_node, prev_node)
        status[p] = _ELEMENT
        start[p] = lp_start
        length[p] = free - lp_start
        # 4. |Le \ Lp| for every element e next to Lp: stamp[e] - w_flag
        for t in range(lp_start, lp_start + length[p]):
            i = lists[t]
            for s in range(start[i], start[i] + n_elements[i]):
                e = lists[s]
                if status[e] == _ELEMENT and e != p:
                    if stamp[e] < w_flag:
                        stamp[e] = degree[e] + w_flag
                    stamp[e] += weight[i]  # weight[i] < 0 while i is in Lp
        # 5. prune each list of Lp, bound its degree, hash it; mass elimination
        for t in range(lp_start, lp_start + length[p]):
            i = lists[t]
            q0 = start[i]
            dst = q0
            external = 0
            h = p
            for s in range(q0, q0 + n_elements[i]):
                e = lists[s]
                if status[e] == _ELEMENT and e != p:
                    outside = stamp[e] - w_flag
                    if outside > 0:
                        external += outside
                        lists[dst] = e
                        dst += 1
                        h += e
                    else:
                        status[e] = _DEAD  # aggressive absorption: Le is inside Lp
            kept_elements = dst - q0
            for s in range(q0 + n_elements[i], q0 + length[i]):
                j = lists[s]
                if status[j] == _VARIABLE and weight[j] > 0:
                    external += weight[j]
                    lists[dst] = j
                    dst += 1
                    h += j
            # p joins the elements; a slot is free because p or one of its elements left
            if dst > q0 + kept_elements:
                lists[dst] = lists[q0 + kept_elements]
            lists[q0 + kept_elements] = p
            dst += 1
            n_elements[i] = kept_elements + 1
            length[i] = dst - q0
            if external == 0 and kept_elements == 0 and dst == q0 + 1:
                status[i] = _DEAD  # only p is left: eliminate i together with p
                n_eliminated -= weight[i]
                lp_weight += weight[i]
                sequence[n_sequence] = i
                n_sequence += 1
            else:
                degree[i] = min(degree[i], external)
                hash_value[i] = h
                bucket = h % n
                hash_next[i] = hash_head[bucket]
                hash_head[bucket] = i
        # 6. supervariables: merge the variables of Lp with identical lists
        for t in range(lp_start, lp_start + length[p]):
            bucket = hash_value[lists[t]] % n
            i = hash_head[bucket]
            hash_head[bucket] = -1
            while i != -1:
                if status[i] == _VARIABLE:
                    mark_flag += 1
                    for s in range(start[i], start[i] + length[i]):
                        mark[lists[s]] = mark_flag
                    before = i
                    j = hash_next[i]
                    while j != -1:
                        same = (
                            status[j] == _VARIABLE
                            and hash_value[j] == hash_value[i]
                            and length[j] == length[i]
                            and n_elements[j] == n_elements[i]
                        )
                        if same:
                            for s in range(start[j], start[j] + length[j]):
                                if mark[lists[s]] != mark_flag:
                                    same = False
                                    break
                        if same:
                            weight[i] += weight[j]  # both negative
                            weight[j] = 0
                            status[j] = _MERGED
                            merged_into[j] = i
                            hash_next[before] = hash_next[j]
                        else:
                            before = j
                        j = hash_next[j]
                i = hash_next[i]
        # 7. final degrees; Lp keeps its principal variables only
        kept = lp_start
        for t in range(lp_start, lp_start + length[p]):
            i = lists[t]
            if status[i] == _VARIABLE and weight[i] < 0:
                w = -weight[i]
                weight[i] = w
                degree[i] = min(degree[i] + lp_weight - w, n - n_eliminated - w)
                _link_degree(i, degree, head, next_node, prev_node)
                if degree[i] < min_degree:
                    min_degree = degree[i]
                lists[kept] = i
                kept += 1
        length[p] = kept - lp_start
        free = kept
        weight[p] = pivot_weight
        degree[p] = lp_weight
        if length[p] == 0:
            status[p] = _DEAD
        w_flag += n + 1
    # each eliminated variable, followed by the variables merged into it
    first_child = np.full(n, -1, dtype=np.int64)
    next_sibling = np.full(n, -1, dtype=np.int64)
    for j in range(n - 1, -1, -1):
        if merged_into[j] != -1:
            next_sibling[j] = first_child[merged_into[j]]
            first_child[merged_into[j]] = j
    stack = np.empty(n, dtype=np.int64)
    count = 0
    for t in range(n_sequence):
        top = 0
        stack[0] = sequence[t]
        while top >= 0:
            node = stack[top]
            top -= 1
            order[count] = node
            count += 1
            child = first_child[node]
            while child != -1:
                top += 1
                stack[top] = child
                child = next_sibling[child]
    return order
