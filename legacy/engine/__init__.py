"""Graphs at work: TF1 graph variants imported onto shared variables, TF2 functions inlined into TF1 graphs, and the
TF1 graph variants of a TF2 SavedModel. Imports `legacy.format`, never `legacy.hub`."""
