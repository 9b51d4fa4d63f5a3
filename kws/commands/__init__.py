"""One module per `kws` subcommand (see kws.cli for the contract)."""
