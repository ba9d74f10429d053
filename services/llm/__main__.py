from services.llm.service import main

main()
