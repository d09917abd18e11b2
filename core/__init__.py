"""The shared state of mlsfeeds: settings, database models and engine, migrations."""
