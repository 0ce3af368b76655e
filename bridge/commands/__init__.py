"""One module per `bridge` subcommand, each with `register(subparsers)` and its examples."""
