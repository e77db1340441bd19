from promptgate.cli import main

main()
