"""The TF1 Hub format on disk, read and written without running any graph: protos, reader, writer, the bridge
metadata, archives and TF Hub handles, atomic directory writes and the unsafe-op scan. Imports only `legacy.errors`."""
