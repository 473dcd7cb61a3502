from tdd_priv.cli import main

raise SystemExit(main())
