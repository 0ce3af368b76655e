"""Partitioned TF1 variables written back from a TF2 model: each part a variable of its own in the graph, marked as
a slice of its whole variable, and the checkpoint holding the whole variable under its full name.

    mark_part(graph_var, {"full_name": "fc/kernel", "full_shape": [12, 4], "offset": [4, 0]})
    values = whole_values(values, partitions)   # {"fc/kernel/part_1": var, ...} -> {"fc/kernel": array, ...}

A TF1 module holds a partitioned variable (`tf.compat.v1.fixed_size_partitioner`) as parts named
`<full_name>/part_N`, each with a `save_slice_info_def` naming the whole variable, its shape and the part's offset;
its checkpoint holds the whole variable once. `hub.Module(...).variable_map` then maps the full name to the list of
parts. A TF1 -> TF2 conversion records the parts in the bridge metadata (`BridgeMetadata.partitions`); these
helpers use that record when the model is written back as a TF1 module.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def recorded_parts(metadata, names) -> dict:
    """The parts `metadata` (a `BridgeMetadata`, or None) records among the variables named `names`: part name ->
    its slice (see `BridgeMetadata.partitions`)."""
    if metadata is None or not metadata.partitions:
        return {}
    names = set(names)
    return {name: part for name, part in metadata.partitions.items() if name in names}


def mark_part(graph_var, part: Mapping) -> None:
    """Mark a TF1 graph variable as the part of its whole variable that `part` describes."""
    import tensorflow as tf

    graph_var._set_save_slice_info(tf.compat.v1.Variable.SaveSliceInfo(  # pylint: disable=protected-access
        full_name=part["full_name"], full_shape=list(part["full_shape"]), var_offset=list(part["offset"]),
        var_shape=graph_var.shape.as_list()))


def whole_values(values: Mapping, partitions: Mapping) -> dict:
    """Checkpoint values with the parts of each partitioned variable joined into the whole (under its full name);
    other values as they are. A part's value may be a variable or an array."""
    result, wholes = {}, {}
    for name, value in values.items():
        part = partitions.get(name)
        if part is None:
            result[name] = value
            continue
        array = np.asarray(value)
        whole = wholes.get(part["full_name"])
        if whole is None:
            whole = wholes[part["full_name"]] = np.zeros(part["full_shape"], array.dtype)
        whole[tuple(slice(o, o + n) for o, n in zip(part["offset"], array.shape))] = array
    result.update(wholes)
    return result
