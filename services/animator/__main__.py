from services.animator.service import main

main()
