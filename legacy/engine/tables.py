"""A TF1 module's lookup tables as TF2 objects: what a table is, how to create one and how to fill it.

    for table in module_tables(variant):              # [TableInfo("hash_table", "HashTableV2", ...)]
        handle = create_anonymous(table)               # eager or in a graph: a fresh, private table
        initialize(variant, table, handle, asset_paths, variables)   # runs the module's own initializer ops

A TF1 module creates its tables with named ops (`HashTableV2` and its `shared_name`) and fills them with the ops of
its `table_initializer` collection (often reading a vocabulary asset). A TF2 SavedModel must own its tables as
tracked resources that it creates and fills again when loaded; the anonymous table ops (`AnonymousHashTable`) give
a table whose life is its handle's, so two loads of one model never share a table by name.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from legacy.errors import ConversionError
from legacy.format.graph_defs import op_name

# TF1 table op -> (its anonymous TF2 form, the attrs that carry over)
TABLE_OPS = {
    "HashTableV2": ("anonymous_hash_table", ("key_dtype", "value_dtype")),
    "MutableHashTableV2": ("anonymous_mutable_hash_table", ("key_dtype", "value_dtype")),
    "MutableHashTableOfTensorsV2": ("anonymous_mutable_hash_table_of_tensors",
                                    ("key_dtype", "value_dtype", "value_shape")),
}
# The anonymous TF2 table ops and the named op a TF1 graph uses for each (what TF2 -> TF1 writes back).
NAMED_TABLE_OPS = {"AnonymousHashTable": "HashTableV2", "HashTableV2": "HashTableV2",
                   "AnonymousMutableHashTable": "MutableHashTableV2", "MutableHashTableV2": "MutableHashTableV2",
                   "AnonymousMutableHashTableOfTensors": "MutableHashTableOfTensorsV2",
                   "MutableHashTableOfTensorsV2": "MutableHashTableOfTensorsV2"}


@dataclasses.dataclass(frozen=True)
class TableInfo:
    """One lookup table of a graph variant: its node, op, attrs and the initializer ops that fill it."""

    node: str
    op: str
    attrs: dict  # attr name -> python value (dtypes as tf.DType, shapes as lists)
    initializers: tuple  # op names of the variant's table_initializer collection that write into this table

    @property
    def key_dtype(self):
        return self.attrs["key_dtype"]

    @property
    def value_dtype(self):
        return self.attrs["value_dtype"]


def module_tables(variant) -> list:
    """The lookup tables of a graph variant (a `legacy.format.reader` variant), in graph order.

    A stateful node that is neither a variable nor a supported table (a queue, a reader) cannot become a TF2
    resource here: ConversionError names it."""
    import tensorflow as tf

    from legacy.engine.graph_import import prune, state_node_names

    graph_def = variant.meta_graph.graph_def
    nodes = {n.name: n for n in graph_def.node}
    states = state_node_names(graph_def)
    initializers = {}
    for init in variant.table_initializers:
        closure = {n.name for n in prune(graph_def, [init]).node}
        for state in states:
            if state in closure:
                initializers.setdefault(state, []).append(op_name(init))
    tables = []
    for name in states:
        node = nodes[name]
        if node.op not in TABLE_OPS:
            raise ConversionError(f"the module holds state in node {name!r} ({node.op}), which is neither a variable "
                                  f"nor a lookup table of kind {', '.join(sorted(TABLE_OPS))}; it cannot be converted")
        attrs = {}
        for attr in TABLE_OPS[node.op][1]:
            value = node.attr[attr]
            attrs[attr] = tf.as_dtype(value.type) if value.WhichOneof("value") == "type" else \
                tf.TensorShape(value.shape).as_list()
        tables.append(TableInfo(name, node.op, attrs, tuple(initializers.get(name, ()))))
    return tables


# Tables whose content is fixed once their initializers ran: two variants' tables of the same definition hold the
# same entries, so one table can serve both. A mutable table may be written by the graph and stays per variant.
IMMUTABLE_TABLE_OPS = frozenset({"HashTableV2"})


def definition(variant, table: TableInfo) -> tuple | None:
    """What decides an immutable table's content: its node, kind and attrs and the initializer ops that fill it
    (with everything they read, e.g. the vocabulary asset's path). Equal definitions in two graph variants of a
    module mean equal tables; None for a mutable table or one without initializers (never shared)."""
    from legacy.engine.graph_import import prune

    if table.op not in IMMUTABLE_TABLE_OPS or not table.initializers:
        return None
    closure = prune(variant.meta_graph.graph_def, list(table.initializers))
    return (table.node, table.op, tuple(sorted((k, str(v)) for k, v in table.attrs.items())),
            closure.SerializeToString(deterministic=True))


def create_anonymous(table: TableInfo):
    """A new, empty table of `table`'s kind, owned by its handle (eagerly or in the current graph)."""
    from tensorflow.python.ops import gen_lookup_ops

    fn = getattr(gen_lookup_ops, TABLE_OPS[table.op][0])
    return fn(**table.attrs)


def initialize(variant, table: TableInfo, handle, asset_paths: Mapping, variables: Mapping):
    """Run `table`'s initializer ops of the module's graph on `handle`: returns a tensor that fills it when computed (in a graph;
    call inside a `tf.function` or `wrap_function`). `asset_paths`: asset tensor name -> string tensor."""
    import tensorflow as tf

    from legacy.engine.graph_import import import_fetches

    if not table.initializers:
        return tf.constant(True)
    graph_def = variant.meta_graph.graph_def
    ops = import_fetches(graph_def, list(table.initializers), asset_paths, variables, states={table.node: handle})
    with tf.control_dependencies([op if isinstance(op, tf.Operation) else op.op for op in ops]):
        return tf.constant(True)
