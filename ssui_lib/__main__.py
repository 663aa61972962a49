from ssui_lib.cli import main

raise SystemExit(main())
