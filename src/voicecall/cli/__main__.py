from voicecall.cli.main import main

main()
