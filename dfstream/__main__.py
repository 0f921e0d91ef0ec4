"""``python -m dfstream`` runs the command line."""

from dfstream.cli import main

raise SystemExit(main())
