from faasemu.cli.main import main

main()
