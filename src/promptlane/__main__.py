from promptlane.cli import main

main()
