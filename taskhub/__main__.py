"""`python -m taskhub` is the `taskhub` command."""

from taskhub.cli.main import main

raise SystemExit(main())
