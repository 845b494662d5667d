from lmstream.cli import main

main()
