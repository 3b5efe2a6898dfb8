from mexpr.cli import main

raise SystemExit(main())
