from faasemu.cli import main

main()
