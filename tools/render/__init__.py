"""The `render` command (see cli.py): the program's objects per cluster, offline."""
