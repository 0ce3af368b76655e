"""Find a graph's stateful random ops and make them draw reproducible numbers, for comparing two models.

Dropout (`tf.compat.v1.nn.dropout`, `slim.dropout`, Keras 2 `Dropout`) and other noise draw from stateful random
ops (`RandomUniform`, `RandomStandardNormal`, ...). Their attrs `seed`/`seed2` decide the stream: both 0 means fresh
entropy on every run; otherwise a Philox stream that a kernel instance advances on each call, so what a call draws
depends on how often that kernel ran before. Two models that are the same computation therefore differ wherever a random op
feeds an output, although nothing is wrong.

`seeded_copy` rewrites every such op into its stateless counterpart (`StatelessRandomUniform`, ...) seeded from
the op's own (seed, seed2) attrs, or from `FALLBACK_SEED` when both are 0. A stateless op draws the same numbers on
every call, whatever ran before. Conversion keeps each op's attrs (graph import and function inlining copy them),
so a model and its conversion, both rewritten this way, draw the same numbers op for op. The rewrite is for
comparisons only: converted models keep their stateful ops and draw fresh numbers in training.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from legacy.format.graph_defs import called_functions, input_closure, op_name

# stateful op -> (stateless op, index of the seed input among the stateless op's inputs, attr renames)
STATELESS = {
    "RandomUniform": ("StatelessRandomUniform", 1, {}),
    "RandomStandardNormal": ("StatelessRandomNormal", 1, {}),
    "TruncatedNormal": ("StatelessTruncatedNormal", 1, {}),
    "RandomUniformInt": ("StatelessRandomUniformInt", 1, {"Tout": "dtype"}),
    "Multinomial": ("StatelessMultinomial", 2, {}),
}
# Stateful random ops without a stateless counterpart here: a comparison cannot match their draws.
UNMATCHED = frozenset({"RandomShuffle", "RandomGamma", "RandomPoisson", "RandomPoissonV2",
                       "ParameterizedTruncatedNormal", "RandomGammaGrad"})
RANDOM_OPS = frozenset(STATELESS) | UNMATCHED
FALLBACK_SEED = (20240917, 1)  # for ops whose seed and seed2 are both 0
_SEED_SUFFIX = "_bridge_seed"


def _seed_pair(node) -> tuple:
    seed, seed2 = node.attr["seed"].i if "seed" in node.attr else 0, node.attr["seed2"].i if "seed2" in node.attr else 0
    return (seed, seed2) if (seed or seed2) else FALLBACK_SEED


def random_ops(graph_def) -> list:
    """(function name or "", node name, op type) of every stateful random op in the graph and its library."""
    found = [("", n.name, n.op) for n in graph_def.node if n.op in RANDOM_OPS]
    for fdef in graph_def.library.function:
        found += [(fdef.signature.name, n.name, n.op) for n in fdef.node_def if n.op in RANDOM_OPS]
    return found


def _used_random_ops(variant) -> list:
    """The random ops a variant's signatures, update ops or regularization losses use (not the initializers')."""
    graph_def = variant.meta_graph.graph_def
    fetches = [info.tensor_name for sig in variant.signatures.values() for info in sig.outputs.values()]
    fetches += list(variant.update_ops) + list(variant.regularization_losses)
    seen = input_closure({n.name: n for n in graph_def.node}, (op_name(f) for f in fetches))
    return [op for op in random_ops(graph_def) if op[1] in seen or op[0]]


def depends_on_random_ops(graph_def, fetches: Sequence[str]) -> bool:
    """Whether any of `fetches` (tensor or op names) is computed from a stateful random op."""
    nodes = {n.name: n for n in graph_def.node}
    functions = {f.signature.name: f for f in graph_def.library.function}
    seen = input_closure(nodes, (op_name(f) for f in fetches))
    kept = [nodes[n] for n in seen]
    if any(n.op in RANDOM_OPS for n in kept):
        return True
    return any(n.op in RANDOM_OPS for f in called_functions(kept, functions) for n in functions[f].node_def)


def _rewrite(node, add_const) -> None:
    """Turn stateful random `node` (a NodeDef) into its stateless form; `add_const(name, pair)` makes the seed and
    returns how the node refers to it."""
    stateless, seed_index, renames = STATELESS[node.op]
    pair = _seed_pair(node)
    data = [i for i in node.input if not i.startswith("^")]
    controls = [i for i in node.input if i.startswith("^")]
    data.insert(seed_index, add_const(node.name + _SEED_SUFFIX, pair))
    attrs = {k: v for k, v in node.attr.items() if k not in ("seed", "seed2")}
    node.op = stateless
    del node.input[:]
    node.input.extend(data + controls)
    node.ClearField("attr")
    for key, value in attrs.items():
        node.attr[renames.get(key, key)].CopyFrom(value)
    node.attr["Tseed"].type = 9  # DT_INT64


def _const(node_def, name: str, pair: tuple) -> None:
    node_def.name = name
    node_def.op = "Const"
    node_def.attr["dtype"].type = 9  # DT_INT64
    tensor = node_def.attr["value"].tensor
    tensor.dtype = 9
    tensor.tensor_shape.dim.add(size=2)
    tensor.int64_val.extend(pair)


def seeded_copy(graph_def) -> tuple:
    """(copy of `graph_def` with every matchable stateful random op made stateless, number of ops rewritten).

    Works on a GraphDef and on the FunctionDefs of its library (TF2 functions, SavedModels).
    """
    from tensorflow.core.framework import graph_pb2

    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    count = 0
    for node in list(out.node):
        if node.op in STATELESS:
            def add(name, pair):
                _const(out.node.add(), name, pair)
                return name
            _rewrite(node, add)
            count += 1
    for fdef in out.library.function:
        for node in list(fdef.node_def):
            if node.op in STATELESS:
                def add(name, pair, fdef=fdef):
                    _const(fdef.node_def.add(), name, pair)
                    return name + ":output:0"
                _rewrite(node, add)
                count += 1
    return out, count


def describe_ops(ops: Iterable) -> str:
    """"2 RandomUniform, 1 RandomStandardNormal" for `random_ops` results."""
    counts: dict = {}
    for _, _, op in ops:
        counts[op] = counts.get(op, 0) + 1
    return ", ".join(f"{n} {op}" for op, n in sorted(counts.items()))


def seeded_module(module):
    """(a `StoredModule` like `module` whose graph variants have their random ops made stateless, the random ops
    found as (variant tags, function, node, op)); `module` itself when it has none."""
    import dataclasses

    from tensorflow.core.protobuf import meta_graph_pb2

    found, variants = [], {}
    for tags, variant in module.variants.items():
        ops = _used_random_ops(variant)
        found += [(tags,) + op for op in ops]
        if not ops:
            variants[tags] = variant
            continue
        meta_graph = meta_graph_pb2.MetaGraphDef()
        meta_graph.CopyFrom(variant.meta_graph)
        graph_def, _ = seeded_copy(variant.meta_graph.graph_def)
        meta_graph.graph_def.CopyFrom(graph_def)
        variants[tags] = dataclasses.replace(variant, meta_graph=meta_graph)
    if not found:
        return module, []
    return dataclasses.replace(module, variants=variants), found
