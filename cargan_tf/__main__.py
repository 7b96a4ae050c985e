"""`python -m cargan_tf ...` runs the command-line interface."""

from cargan_tf.cli import main

raise SystemExit(main())
