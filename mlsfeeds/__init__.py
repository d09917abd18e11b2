"""The mlsfeeds command line: wires settings and adapters, starts the service and the worker."""
