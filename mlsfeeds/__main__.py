from mlsfeeds.cli import main

raise SystemExit(main())
