from gallerysync.cli import main

main()
